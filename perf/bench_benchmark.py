"""Benchmark-module speed: tokenize-once, k-mer features, training-step cost of the CNN and tiny Caduceus.

    python perf/bench_benchmark.py [--shared ../shared] [--threads 1]

Prints one line per measurement (seconds). Uses the real nontata test split when ../shared is present,
else generated sequences of the same shape (9,034 x 251 bp).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def timed(label, fn, repeat=1):
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    dt = (time.perf_counter() - t) / repeat
    print(f"{label:<58} {dt:8.3f} s")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from genodiff.benchmarks.datasets import LabeledSet, encode_sequences, load_table
    from genodiff.benchmarks.kmer import kmer_features
    from genodiff.benchmarks.neural import BackboneClassifier, GBCNN, load_backbone

    path = Path(args.shared) / "data/genomic_benchmarks/human_nontata_promoters/test.csv.gz"
    if path.exists():
        data = timed("load + tokenize nontata test (9,034 x 251 bp), once", lambda: load_table(path))
        s = data.splits["all"]
    else:
        rng = np.random.default_rng(0)
        seqs = ["".join(rng.choice(list("ACGT"), 251)) for _ in range(9034)]
        ids, lengths, _, _ = timed("tokenize 9,034 x 251 bp (generated)", lambda: encode_sequences(seqs))
        s = LabeledSet(ids, lengths, rng.integers(0, 2, 9034), ["0", "1"])
    timed("k-mer features k=3..6, all records", lambda: kmer_features(s.ids, s.lengths, (3, 4, 5, 6)))
    x = torch.from_numpy(s.ids[:32].astype(np.int64))
    mask = torch.ones_like(x, dtype=torch.bool)
    y = torch.from_numpy(s.labels[:32])
    models = {"CNN (GB baseline)": GBCNN(x.shape[1], 2)}
    for name, cfg, rc in (("caduceus PS d32 L2", {"d_model": 32, "n_layer": 2, "rcps": True}, "ps"),
                          ("caduceus Ph d32 L2", {"d_model": 32, "n_layer": 2, "rcps": False}, "none")):
        models[name] = BackboneClassifier(load_backbone("caduceus", cfg)[0], 2, rc=rc)
    for name, m in models.items():
        opt = torch.optim.AdamW(m.parameters(), 1e-3)

        def step():
            loss = torch.nn.functional.cross_entropy(m(x, mask), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        step()  # warm-up (numba compilation)
        timed(f"train step batch 32 x {x.shape[1]}: {name} ({args.threads} thr)", step, repeat=3)


if __name__ == "__main__":
    main()
