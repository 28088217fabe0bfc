"""Infilling quality of the samplers: is the default (cached, dilated order, T = 16) as good as first-hitting when
the model fills a gap between real flanks?

    python perf/bench_infill_quality.py --ar AR_EXPORT [--checkpoint bundled:caduceus-ps-tiny-hg38chr2]
        [--fasta ../shared/data/hg38_chr2_slice/chr2_1-2000000.fa.gz] [--windows 100] [--length 1024]
        [--gap 384:640] [--configs first_hitting@10,cached:128@10,cached+dilated:16@10,cached+dilated:4@10]
        [--threads 2] [--seed 0] [--out JSON]

Takes the first ``--windows`` windows of the test split (the last 200,000 bp of the FASTA, which the bundled model
never saw), masks ``--gap`` (0-based half-open) in each and fills it with every configuration
(``method[+order][:steps][@batch]``), same seed, through ``genodiff sample``'s code path. Scores, per window, the
negative log-likelihood of the whole window after filling under the best Markov chain (chosen on the validation
split among orders 0..8, fitted on the training split) and under an AR model (``--ar``, exact likelihood), in bits
per generated base. The flanks are the same real bases in every configuration, so differences between
configurations come from the filled gap and its junctions only; they are reported paired by window against the
first configuration (first-hitting: the exact sampler), with one standard error. Prints Markdown tables; writes
JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_generate import bench_sampler, fill_masks, parse_config
from bench_sampler_quality import Scorers, default_fasta, load_splits, mean_se


def fill_gaps(model, spec: str, windows: np.ndarray, gap: tuple[int, int], seed: int) -> tuple[np.ndarray, int, float]:
    """The windows with ``gap`` filled by configuration ``spec``; returns (tokens, denoiser calls, wall seconds)."""
    method, steps, batch = parse_config(spec, 10)
    sampler = bench_sampler(model, method, steps)
    g = torch.Generator().manual_seed(seed)
    out, calls = [], 0
    start = time.time()
    for i in range(0, len(windows), batch):
        x = torch.as_tensor(windows[i:i + batch].astype(np.int64))
        x[:, gap[0]:gap[1]] = model.vocab.mask_id
        tokens, c = fill_masks(model, sampler, x, g)
        calls += c
        out.append(tokens.numpy())
    return np.concatenate(out), calls, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="bundled:caduceus-ps-tiny-hg38chr2")
    ap.add_argument("--ar", default=None)
    ap.add_argument("--fasta", default=default_fasta())
    ap.add_argument("--windows", type=int, default=100)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--gap", default="384:640")
    ap.add_argument("--configs", default="first_hitting@10,cached:128@10,cached+dilated:16@10,cached+dilated:4@10")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from genodiff.interop.export import load_model

    gap = tuple(int(v) for v in args.gap.split(":"))
    n_gap = gap[1] - gap[0]
    train, valid, test = load_splits(args.fasta, args.length)
    windows = np.stack([np.asarray(w) for w in test[: args.windows]])
    scorers = Scorers(train, valid, args.ar)
    model = load_model(args.checkpoint, "cpu")
    rows = []
    for spec in args.configs.split(","):
        tokens, calls, wall = fill_gaps(model, spec, windows, gap, args.seed)
        per = {"markov_bits": np.asarray(scorers.markov_bits(list(tokens))) * args.length / n_gap}
        if scorers.ar is not None:
            per["ar_bits"] = np.asarray(scorers.ar_bits(list(tokens))) * args.length / n_gap
        rows.append({"config": spec, "denoiser_calls": calls, "wall_s": round(wall, 1),
                     "per_window": {k: v.tolist() for k, v in per.items()}})
        print(f"{spec}: {calls} calls, {wall:.0f} s", flush=True)
    base = rows[0]
    heads = " | ".join(f"{key}, minus {base['config']}" for key in base["per_window"])
    lines = [f"| configuration | calls per batch | {heads} |",
             "| --- | ---: |" + " --- |" * len(base["per_window"])]
    for r in rows:
        cells = []
        for key, values in r["per_window"].items():
            r.setdefault("paired_to_first", {})[key] = mean_se(np.subtract(values, base["per_window"][key]))
            m, s = r["paired_to_first"][key]
            cells.append(f"{m:+.4f} ± {s:.4f}")
        batches = math.ceil(args.windows / parse_config(r["config"], 10)[2])
        lines.append(f"| {r['config']} | {r['denoiser_calls'] / batches:.0f} | {' | '.join(cells)} |")
    print("\n".join(lines))
    result = {"windows": args.windows, "length": args.length, "gap": list(gap), "checkpoint": args.checkpoint,
              "ar": args.ar, "fasta": args.fasta, "markov_order": scorers.markov_order, "seed": args.seed,
              "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), "unit": "bits per generated base (whole-window NLL / gap length)",
              "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
