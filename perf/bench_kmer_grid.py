"""Speed of the tuned k-mer baseline: the full grid, 5-fold CV, on 9,000 records of 251 bp (goal: < 2 min, 2 cores).

    python perf/bench_kmer_grid.py [--shared ../shared] [--n-jobs 2] [--folds 5]

Uses the real GB human_nontata_promoters test split (9,034 x 251 bp) when ../shared is present, else generated
sequences of the same shape. Prints one JSON object: seconds for the k-mer counts (once per task), for each
fold (grid search on the inner split + refit + prediction), the total, CPU seconds, the grid size, the load
average before and after (the machine may be shared: compare CPU time with wall time), and the choices.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from genodiff.benchmarks.datasets import LabeledSet, encode_sequences, load_table
from genodiff.benchmarks.folds import cv_splits
from genodiff.benchmarks.kmer import KmerLogReg, KmerTable


def loadavg() -> list:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]] if Path("/proc/loadavg").exists() else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.shared) / "data/genomic_benchmarks/human_nontata_promoters/test.csv.gz"
    if path.exists():
        data, source = load_table(path).splits["all"], str(path)
    else:
        rng = np.random.default_rng(0)
        ids, lengths, _, _ = encode_sequences(["".join(rng.choice(list("ACGT"), 251)) for _ in range(9034)])
        data, source = LabeledSet(ids, lengths, rng.integers(0, 2, 9034), ["0", "1"]), "generated"
    out = {"source": source, "records": len(data), "n_jobs": args.n_jobs, "loadavg_before": loadavg()}
    splits = cv_splits(data.labels, 5, 0, 0.1)[: args.folds]
    wall, cpu = time.perf_counter(), time.process_time()
    t = time.perf_counter()
    KmerTable.of(data, KmerLogReg().ks)
    out["counts_once_s"] = round(time.perf_counter() - t, 2)
    folds = []
    for s in splits:
        t = time.perf_counter()
        m = KmerLogReg(n_jobs=args.n_jobs).fit_indexed(data, s.train, s.val)
        acc = float((m.predict_proba_indexed(data, s.test).argmax(1) == data.labels[s.test]).mean())
        folds.append({"split": s.name, "seconds": round(time.perf_counter() - t, 1), "grid_points": len(m.info["grid"]),
                      "choice": m.info["choice"], "val_accuracy": m.info["val_accuracy"], "test_accuracy": acc})
    out.update(folds=folds, total_s=round(time.perf_counter() - wall, 1), cpu_s=round(time.process_time() - cpu, 1),
               cpus=len(os.sched_getaffinity(0)), loadavg_after=loadavg())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
