"""Benchmark the MDLM samplers side by side: ancestral vs cached vs first-hitting.

    python perf/bench_samplers.py [--length 1024] [--steps 1000] [--batch 1] [--repeats 3] [--threads 1]

A fixed, randomly initialized small bidirectional denoiser (embedding -> residual depthwise-conv +
MLP blocks -> logits over the 12-token DNA vocabulary; no time conditioning) is driven by each
sampler with the same seed. Prints one JSON object: per sampler the denoiser calls, the best and
median wall time and the best process CPU time over ``repeats`` runs (CPU time is robust to other
load on a shared machine), ms per call, the speedups over ancestral, and whether the
cached sampler's tokens are bit-identical to the ancestral sampler's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from genodiff.diffusion.sampling import ancestral_sample, first_hitting_sample
from genodiff.diffusion.schedules import make_schedule
from genodiff.diffusion.vocab import DiffusionVocab


class SmallDenoiser(torch.nn.Module):
    """~0.2M-parameter bidirectional conv/MLP denoiser; ``forward(x, t=None) -> logits[B, L, V]``."""

    def __init__(self, vocab_size: int = 12, dim: int = 128, layers: int = 4, kernel: int = 9):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab_size, dim)
        self.convs = torch.nn.ModuleList(torch.nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim) for _ in range(layers))
        self.mlps = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.LayerNorm(dim), torch.nn.Linear(dim, 2 * dim), torch.nn.GELU(), torch.nn.Linear(2 * dim, dim))
            for _ in range(layers)
        )
        self.out = torch.nn.Linear(dim, vocab_size)

    def forward(self, x, t=None):
        h = self.emb(x)
        for conv, mlp in zip(self.convs, self.mlps):
            h = h + conv(h.transpose(1, 2)).transpose(1, 2)
            h = h + mlp(h)
        return self.out(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    vocab = DiffusionVocab.dna()
    net = SmallDenoiser(vocab.size).eval()
    sched = make_schedule("loglinear")

    runs = {
        "ancestral": lambda g: ancestral_sample(net, vocab, args.batch, args.length, schedule=sched, num_steps=args.steps, generator=g),
        "cached": lambda g: ancestral_sample(net, vocab, args.batch, args.length, schedule=sched, num_steps=args.steps, cache=True, generator=g),
        "first_hitting": lambda g: first_hitting_sample(net, vocab, args.batch, args.length, schedule=sched, generator=g),
    }
    results, tokens = {}, {}
    with torch.inference_mode():
        x = torch.full((args.batch, args.length), vocab.mask_id)
        for _ in range(3):
            net(x)  # warm-up
        times = {k: [] for k in runs}
        cpu = {k: [] for k in runs}
        for r in range(args.repeats):
            for name, fn in runs.items():  # interleaved so machine load affects all alike
                g = torch.Generator().manual_seed(args.seed)
                t0, c0 = time.perf_counter(), time.process_time()
                out = fn(g)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                results[name] = {"denoiser_calls": out.num_denoiser_calls, "steps": out.num_steps}
                tokens[name] = out.tokens
        t0 = time.perf_counter()
        for _ in range(20):
            net(x)
        call_ms = (time.perf_counter() - t0) / 20 * 1e3
    base, base_med, base_cpu = min(times["ancestral"]), statistics.median(times["ancestral"]), min(cpu["ancestral"])
    for name in runs:
        best, med, cbest = min(times[name]), statistics.median(times[name]), min(cpu[name])
        results[name].update(
            wall_s_best=round(best, 3),
            wall_s_median=round(med, 3),
            cpu_s_best=round(cbest, 3),
            ms_per_call_cpu=round(cbest / max(1, results[name]["denoiser_calls"]) * 1e3, 3),
            speedup_vs_ancestral_wall_best=round(base / best, 3),
            speedup_vs_ancestral_wall_median=round(base_med / med, 3),
            speedup_vs_ancestral_cpu=round(base_cpu / cbest, 3),
        )
    report = {
        "config": vars(args),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "denoiser": {"params": sum(p.numel() for p in net.parameters()), "ms_per_forward": round(call_ms, 3)},
        "samplers": results,
        "cached_bit_identical_to_ancestral": bool(torch.equal(tokens["ancestral"], tokens["cached"])),
        "first_hitting_calls_le_length": results["first_hitting"]["denoiser_calls"] <= args.length,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
