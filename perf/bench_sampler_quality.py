"""Sampler cost against sample quality: which number of reverse steps is as good as the exact sampler?

    python perf/bench_sampler_quality.py --ar AR_EXPORT [--checkpoint bundled:caduceus-ps-tiny-hg38chr2]
        [--fasta ../shared/data/hg38_chr2_slice/chr2_1-2000000.fa.gz] [--num 100] [--length 1024]
        [--configs first_hitting@10,ancestral:16@10,...,cached:1024@10] [--threads 2]
        [--samples-dir perf/results/sampler_quality] [--out perf/results/sampler_quality_2core.json]

Every configuration ``method[:steps][@batch]`` generates ``--num`` unconditional sequences of ``--length`` bp
with the same seed through ``genodiff sample``'s code path. Each set is then scored three ways, none of which
is the generating model:

* mean log-likelihood (bits/base, ± one standard error over the sequences) under the best Markov chain:
  orders 0..8 fitted on the training split of the FASTA, the order chosen on its validation split;
* the same under an autoregressive model (``--ar``: a genodiff AR export, exact likelihood);
* Jensen-Shannon divergence (bits) of the k-mer spectra, k = 1..6, to ``--num`` held-out real windows (the
  test split), with a bootstrap standard error (the sequences resampled 200 times); the JS between those
  windows and the remaining test windows is shown as the floor (two real sets of this size).

The exact sampler is first-hitting (the exact simulation of the continuous-time reverse process). A
configuration is *within the noise* of it when each of the eight numbers (two mean log-likelihoods, six JS)
differs from first-hitting's by less than two standard errors of the difference.
Splits: the FASTA's last 200,000 bp are test, the 100,000 before them validation, the rest training (the
bundled model's splits). Samples are kept per configuration in ``--samples-dir`` (FASTA + timing JSON), so an
interrupted run resumes with the configurations it has not finished. Prints a Markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_generate import generate_unconditional, parse_config

REPO = Path(__file__).resolve().parents[1]
LN2 = math.log(2.0)
BOOTSTRAP = 200  # resamples of the sequences for the JS standard errors
DEFAULT_CONFIGS = ("first_hitting@10,ancestral:16@10,ancestral:32@10,ancestral:64@10,ancestral:128@10,"
                   "ancestral:256@10,cached:1024@1,cached:1024@10")


def default_fasta() -> str:
    shared = Path(os.environ.get("GENODIFF_SHARED", REPO.parent / "shared"))
    return str(shared / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz")


def mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def load_splits(fasta: str, length: int):
    """(training token arrays, validation windows, test windows), windows non-overlapping, ``length`` bp."""
    from genodiff.training.datamodule import GenomeDataConfig, GenomeDataModule

    dm = GenomeDataModule(GenomeDataConfig(dataset=None, fasta=fasta, window=length, valid_tail_bp=100_000,
                                           test_tail_bp=200_000, max_eval_windows=None))
    dm.setup()
    train = [np.asarray(dm.genome.fetch(iv.chrom, iv.start, iv.end)) for iv in dm.intervals["train"]]
    return train, list(dm.split_sequences("valid")), list(dm.split_sequences("test"))


class Scorers:
    """Per-sequence bits/base under the best Markov chain and an AR model."""

    def __init__(self, train, valid, ar_export: str | None):
        from genodiff.analysis.markov import MarkovModel, markov_baseline
        from genodiff.interop.export import load_model

        choice = markov_baseline(train, valid, orders=range(0, 9))
        self.markov_order = int(choice["best_order"])
        self.markov_valid_bits = float(choice["best_bits_per_base"])
        self.markov = MarkovModel.fit(train, self.markov_order)
        self.ar = load_model(ar_export, "cpu") if ar_export else None

    def markov_bits(self, seqs: list[np.ndarray]) -> list[float]:
        out = []
        for ids in seqs:
            nats, n = self.markov.nll(ids)
            out.append(nats / n / LN2)
        return out

    @torch.inference_mode()
    def ar_bits(self, seqs: list[np.ndarray], batch: int = 20) -> list[float]:
        from genodiff.diffusion.likelihood import estimate_nelbo

        out = []
        for i in range(0, len(seqs), batch):
            x0 = torch.as_tensor(np.stack(seqs[i:i + batch]).astype(np.int64))
            est = estimate_nelbo(self.ar.objective, self.ar.denoiser, x0)
            out += (est.nelbo / est.num_tokens / LN2).tolist()
        return out


def quality(scorers: Scorers, seqs: list[str], reference_spectra: dict) -> dict:
    from genodiff.analysis.sequence_stats import js_divergence, kmer_spectrum
    from genodiff.generate.conditioning import encode

    ids = [encode(s) for s in seqs]
    per_sequence = {"markov_bits": scorers.markov_bits(ids)}
    if scorers.ar is not None:
        per_sequence["ar_bits"] = scorers.ar_bits(ids)
    row = {key: mean_se(values) for key, values in per_sequence.items()}
    row["per_sequence"] = per_sequence
    row["js_bits"] = {k: js_divergence(kmer_spectrum(seqs, k), reference_spectra[k]) for k in range(1, 7)}
    rng = np.random.default_rng(0)
    draws = [[seqs[i] for i in rng.integers(0, len(seqs), len(seqs))] for _ in range(BOOTSTRAP)]
    row["js_bits_se"] = {k: float(np.std([js_divergence(kmer_spectrum(d, k), reference_spectra[k]) for d in draws],
                                         ddof=1)) for k in range(1, 7)}
    return row


def within_noise(row: dict, exact: dict) -> bool:
    """Every mean log-likelihood and JS within two standard errors of the difference from ``exact``'s."""
    pairs = [(row[key], exact[key]) for key in ("markov_bits", "ar_bits") if key in row]
    pairs += [((row["js_bits"][k], row["js_bits_se"][k]), (exact["js_bits"][k], exact["js_bits_se"][k]))
              for k in row["js_bits"]]
    return all(abs(m - m0) < 2 * math.hypot(s, s0) for (m, s), (m0, s0) in pairs)


def reveal_order(row: dict) -> str:
    """The reveal order of a step sampler's row: ``"cached+dilated"`` -> ``"dilated"``, else ``"random"``."""
    return row["sampler"].partition("+")[2] or "random"


def paired_steps(rows: list[dict], against: str = "next") -> list[dict]:
    """Differences, sequence by sequence, between the sets of the step samplers (ancestral and cached) at one
    batch size: each T minus the next larger T (``against="next"``), or each T minus the largest T
    (``"finest"``).

    For one seed and batch size those samplers share their randomness across T (``ancestral_sample``: each
    position's reveal time and token uniform are drawn up front; T only rounds the reveal times to the grid,
    and caching does not change the trajectory), so the samples of T and 2T are nearly the same sequences and
    these differences measure how the discretization error shrinks without the sampling noise of two
    independent sets. The limit T -> infinity reveals one position at a time in a uniformly random order, the
    law of the exact sampler: with T = 1,024 at L = 1,024 (one reveal per step on average) the finest set is a
    near-exact, coupled reference, and ``"finest"`` gives the whole discretization loss of each T.

    Sets of the dilated reveal order (``cached+dilated``) are paired among themselves: they share the per-row
    offsets and the token uniforms across T, and at T = L their finest set reveals exactly one position per
    step in the dilated order (the exact law of that order, which for a trained model need not be the law of
    the uniformly random one). Returns ``{"order", "batch", "from_steps", "to_steps", "<scorer>": (mean, s.e.)}``
    rows.
    """
    out = []
    step_rows = [r for r in rows if r["sampler"].partition("+")[0] in ("ancestral", "cached") and r.get("steps")]
    for order, batch in sorted({(reveal_order(r), r["batch"]) for r in step_rows}):
        group = sorted((r for r in step_rows if r["batch"] == batch and reveal_order(r) == order),
                       key=lambda r: r["steps"])
        finest = group[-1]
        for i, a in enumerate(group):
            b = finest if against == "finest" else (group[i + 1] if i + 1 < len(group) else a)
            if a["steps"] == b["steps"]:
                continue
            diff = {"order": order, "batch": batch, "from_steps": a["steps"], "to_steps": b["steps"]}
            for key in a["per_sequence"]:
                diff[key] = mean_se(np.subtract(a["per_sequence"][key], b["per_sequence"][key]))
            out.append(diff)
    return out


def read_fasta_seqs(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line and not line.startswith(">")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="bundled:caduceus-ps-tiny-hg38chr2")
    ap.add_argument("--ar", default=None, help="genodiff AR export scoring the samples (omit: Markov + JS only)")
    ap.add_argument("--fasta", default=default_fasta())
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples-dir", default="perf/results/sampler_quality")
    ap.add_argument("--out", default=None, help="write the JSON here as well as to stdout")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from genodiff.analysis.sequence_stats import js_divergence, kmer_spectrum
    from genodiff.generate.conditioning import decode
    from genodiff.interop.export import load_model

    train, valid, test = load_splits(args.fasta, args.length)
    if len(test) < args.num + 10:
        sys.exit(f"--fasta: the test split has {len(test)} windows of {args.length} bp; need more than {args.num}")
    scorers = Scorers(train, valid, args.ar)
    ref = [decode(w) for w in test[: args.num]]
    other = [decode(w) for w in test[args.num:]]
    spectra = {k: kmer_spectrum(ref, k) for k in range(1, 7)}
    floor = {k: js_divergence(kmer_spectrum(other, k), spectra[k]) for k in range(1, 7)}
    real = quality(scorers, ref, spectra)
    print(f"Markov order {scorers.markov_order} (valid {scorers.markov_valid_bits:.4f} bits/base); real test windows: "
          f"Markov {real['markov_bits'][0]:.4f}" + (f", AR {real['ar_bits'][0]:.4f}" if "ar_bits" in real else ""),
          file=sys.stderr, flush=True)

    model = load_model(args.checkpoint, "cpu")
    samples_dir = Path(args.samples_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.configs.split(","):
        method, steps, batch = parse_config(spec, 10)
        name = f"{method}_{steps or 'exact'}_b{batch}_n{args.num}_L{args.length}_s{args.seed}"
        fasta, timing = samples_dir / f"{name}.fa", samples_dir / f"{name}.json"
        if fasta.is_file() and timing.is_file():
            seqs, run = read_fasta_seqs(fasta), json.loads(timing.read_text())
            print(f"{name}: reusing {fasta}", file=sys.stderr, flush=True)
        else:
            def progress(done, name=name):
                print(f"{name}: {done}/{args.num}", file=sys.stderr, flush=True)

            seqs, calls, wall, cpu = generate_unconditional(model, method, steps, batch, args.num, args.length,
                                                            args.seed, progress)
            run = {"denoiser_calls": calls, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                   "threads": args.threads, "checkpoint": args.checkpoint}
            fasta.with_suffix(".tmp").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
            fasta.with_suffix(".tmp").replace(fasta)
            timing.write_text(json.dumps(run, indent=2))
        row = {"sampler": method, "steps": steps or None, "batch": batch, **run, **quality(scorers, seqs, spectra)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    exact = next((r for r in rows if r["sampler"] == "first_hitting"), None)
    for r in rows:
        r["calls_per_sequence"] = round(r["denoiser_calls"] * r["batch"] / args.num, 1)
        if exact is not None:
            r["within_noise_of_first_hitting"] = within_noise(r, exact)
    result = {"num": args.num, "length": args.length, "threads": args.threads, "checkpoint": args.checkpoint,
              "ar": args.ar, "fasta": args.fasta, "markov_order": scorers.markov_order,
              "markov_valid_bits_per_base": scorers.markov_valid_bits, "real_test_windows": real,
              "js_floor_bits": floor, "torch": torch.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows, "paired_steps": paired_steps(rows),
              "paired_to_finest": paired_steps(rows, against="finest")}
    print(render_table(result), file=sys.stderr)
    print(render_paired(result["paired_steps"]), file=sys.stderr)
    print(render_paired(result["paired_to_finest"]), file=sys.stderr)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def render_table(result: dict) -> str:
    def ms(pair):
        return f"{pair[0]:.4f} ± {pair[1]:.4f}"

    has_ar = "ar_bits" in result["real_test_windows"]
    head = "| sampler | T | batch | calls / sequence | Markov bits/base | " + ("AR bits/base | " if has_ar else "") + \
        " | ".join(f"JS k={k}" for k in range(1, 7)) + " | within noise of first-hitting |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in result["rows"] + [dict(result["real_test_windows"], sampler="real test windows")]:  # a JSON round trip too
        cells = [r["sampler"], str(r.get("steps") or ("exact" if r["sampler"] == "first_hitting" else "")),
                 str(r.get("batch", "")), str(r.get("calls_per_sequence", "")), ms(r["markov_bits"])]
        if has_ar:
            cells.append(ms(r["ar_bits"]))
        js, se = list(r["js_bits"].values()), list(r.get("js_bits_se", {}).values())  # k = 1..6 (JSON: str keys)
        cells += [f"{v:.5f}" + (f" ± {se[i]:.5f}" if se and r["sampler"] != "real test windows" else "")
                  for i, v in enumerate(js)]
        flag = r.get("within_noise_of_first_hitting")
        cells.append("" if flag is None else ("yes" if flag else "**no**"))
        lines.append("| " + " | ".join(cells) + " |")
    floor = result["js_floor_bits"]
    lines.append("| JS floor (two real sets) | | | | | " + ("| " if has_ar else "") +
                 " | ".join(f"{v:.5f}" for v in floor.values()) + " | |")
    return "\n".join(lines)


def render_paired(paired: list[dict]) -> str:
    lines = ["| order | batch | T -> T' | Markov bits/base, T minus T' | AR bits/base, T minus T' |",
             "| --- | --- | --- | --- | --- |"]
    for d in paired:
        cells = [d.get("order", "random"), str(d["batch"]), f"{d['from_steps']} -> {d['to_steps']}"]
        cells += [f"{d[k][0]:+.5f} ± {d[k][1]:.5f}" if k in d else "" for k in ("markov_bits", "ar_bits")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
