"""Benchmark ``genodiff sample`` samplers end to end: time, denoiser calls and sample quality.

    python perf/bench_generate.py [--checkpoint RUN_OR_EXPORT] [--num 100] [--length 1024] [--batch 100]
        [--configs ancestral:1024,cached:1024,first_hitting,ancestral:4096] [--threads 1] [--train-steps 100]
        [--save-fasta DIR]

Without ``--checkpoint`` a tiny Caduceus-PS (configs/model/caduceus_tiny.yaml: d_model 48, 2 layers) is
trained for ``--train-steps`` steps on the built-in demo genome (window = ``--length``) and exported.
Every sampler configuration (``method[+order][:steps][@batch]``, e.g. ``cached+dilated:16@10``) generates
``--num`` sequences of ``--length`` bp with the same seed, through the same code path as ``genodiff sample``
(:func:`genodiff.generate.conditioning.fill`).
Quality: Jensen-Shannon divergence (bits) of the k-mer spectra (k = 1..6) of the samples to ``--num``
held-out reference windows of the same length (demo genome test split); the JS between two disjoint
reference sets of the same size is printed as the noise floor. Reports wall time and process CPU time
(``time.process_time``; robust to other jobs on a shared machine). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def train_tiny(run_dir: Path, length: int, steps: int) -> Path:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from genodiff.tasks import train

    overrides = ["experiment/pretrain=demo", f"data.window={length}", "data.max_eval_windows=4", f"max_steps={steps}",
                 f"val_every_n_steps={steps}", f"checkpoint_every_n_steps={steps}", "loggers=[csv]", "progress=false",
                 f"output_dir={run_dir}", "global_batch_size=8", "max_per_device_batch_size=8"]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
        cfg = compose(config_name="pretrain", overrides=overrides)
    GlobalHydra.instance().clear()
    train.run(cfg)
    return run_dir


def reference_windows(length: int, num: int, offset: int = 0) -> list[str]:
    from genodiff.generate.conditioning import decode
    from genodiff.training.datamodule import GenomeDataConfig, GenomeDataModule

    cfg = GenomeDataConfig(dataset="demo", window=length, max_eval_windows=2 * num + offset)
    dm = GenomeDataModule(cfg, batch_size=8)
    dm.setup()
    out = []
    for split in ("test", "valid"):
        for w in dm.split_sequences(split):
            out.append(decode(w) if isinstance(w, np.ndarray) else str(w).upper())
    return out


def parse_config(spec: str, default_batch: int) -> tuple[str, int, int]:
    """``method[+order][:steps][@batch]`` -> (method with its order, steps or 0, batch)."""
    spec, _, batch = spec.partition("@")
    method, _, steps = spec.partition(":")
    return method, int(steps) if steps else 0, int(batch) if batch else default_batch


def bench_sampler(model, method: str, steps: int):
    """The :class:`Sampler` of a configuration's ``method[+order]`` (``"cached+dilated"``: the dilated reveal
    order) and ``steps`` (0: the sampler's default), with the model's noise schedule."""
    from genodiff.diffusion.sampling import Sampler

    method, _, order = method.partition("+")
    return Sampler({"method": method, "num_steps": steps or 1000, "schedule": model.objective.config.schedule,
                    "order": order or "random"}, model.vocab)


def fill_masks(model, sampler, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Every ``[MASK]`` of ``x`` (LongTensor[B, L]) filled through ``genodiff sample``'s code path (one window):
    (tokens, denoiser calls)."""
    from genodiff.generate import conditioning as C

    tokens, calls, _ = C.fill(lambda x_init, generator: sampler.sample(model.denoiser, x_init=x_init,
                                                                       generator=generator),
                              x, model.vocab.mask_id, None, None, generator)
    return tokens, calls


def generate_unconditional(model, method: str, steps: int, batch: int, num: int, length: int, seed: int,
                           progress=None) -> tuple[list[str], int, float, float]:
    """``num`` unconditional sequences of ``length`` bp through ``genodiff sample``'s code path.

    ``steps`` 0 means the sampler's default (first-hitting ignores it). ``progress(done)`` is called after each
    batch. Returns (sequences, denoiser calls, wall seconds, process CPU seconds).
    """
    from genodiff.data.genome import vocab as V
    from genodiff.generate import conditioning as C

    sampler = bench_sampler(model, method, steps)
    g = torch.Generator().manual_seed(seed)
    calls, seqs = 0, []
    wall0, cpu0 = time.time(), time.process_time()
    for start in range(0, num, batch):
        x = torch.full((min(batch, num - start), length), V.MASK_ID, dtype=torch.long)
        tokens, c = fill_masks(model, sampler, x, g)
        calls += c
        seqs += [C.decode(row) for row in tokens]
        if progress:
            progress(len(seqs))
    return seqs, calls, time.time() - wall0, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--configs", default="ancestral:1024,cached:1024,first_hitting,ancestral:4096")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-fasta", default=None, metavar="DIR",
                    help="write each configuration's samples to DIR/<method>_<steps>_b<batch>.fa (to compare runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from genodiff.analysis.sequence_stats import js_divergence, kmer_spectrum
    from genodiff.interop.export import load_model

    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    os.environ.setdefault("GENODIFF_DATA", str(tmp / "cache"))
    train_seconds = None
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON result
        if args.checkpoint is None:
            t0 = time.time()
            args.checkpoint = str(train_tiny(tmp / "run", args.length, args.train_steps))
            train_seconds = round(time.time() - t0, 1)
        refs = reference_windows(args.length, args.num)
    model = load_model(args.checkpoint, "cpu")
    ref_a, ref_b = refs[: args.num], refs[args.num: 2 * args.num]
    spectra_ref = {k: kmer_spectrum(ref_a, k) for k in range(1, 7)}
    floor = {k: js_divergence(kmer_spectrum(ref_b, k), spectra_ref[k]) for k in range(1, 7)} if ref_b else None

    results = []
    for spec in args.configs.split(","):
        method, steps, batch = parse_config(spec, args.batch)
        seqs, calls, wall, cpu = generate_unconditional(model, method, steps, batch, args.num, args.length, args.seed)
        if args.save_fasta:
            out = Path(args.save_fasta)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / f"{method}_{steps or 'exact'}_b{batch}.fa", "w") as fh:
                fh.writelines(f">s{i}\n{s}\n" for i, s in enumerate(seqs))
        js = {k: js_divergence(kmer_spectrum(seqs, k), spectra_ref[k]) for k in range(1, 7)}
        row = {"sampler": method, "steps": steps or None, "batch": batch, "denoiser_calls": calls,
               "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "js_bits": {k: round(v, 5) for k, v in js.items()}}
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    base = next((r for r in results if r["sampler"] == "ancestral"), None)
    if base:
        for r in results:
            r["cpu_speedup_vs_first_ancestral"] = round(base["cpu_s"] / max(r["cpu_s"], 1e-9), 2)
    print(json.dumps({"num": args.num, "length": args.length, "threads": args.threads, "checkpoint": args.checkpoint,
                      "model": model.spec.get("model"), "train_seconds": train_seconds,
                      "reference_floor_js_bits": {k: round(v, 5) for k, v in (floor or {}).items()},
                      "torch": torch.__version__, "python": platform.python_version(), "results": results},
                     indent=2))


if __name__ == "__main__":
    main()
