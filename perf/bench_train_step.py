"""Time one training step (forward, backward, AdamW step) of the paper's Caduceus on CPU.

    python perf/bench_train_step.py [--batch 8] [--length 1024] [--threads 2] [--steps 3] [--rcps]
                                    [--general] [--mambapy] [--mambapy-steps 1] [--conv ops|shift|both]

Prints one JSON object. Model: Caduceus d_model 118, 4 layers (~470k parameters; Ph, or PS with --rcps),
MLM-style cross-entropy over all positions, as genodiff trains it on a CPU: each Mamba mixer runs the fused
time-major kernels with their backward (``genodiff.ops.mixer_train``). With --general the same model is also
timed on the general path (``genodiff.ops.selective_scan`` with the channel-major numba scan, the numba conv,
torch for the rest), side by side in the same process. With --mambapy it is also timed on the general path
with the scan replaced by mambapy's parallel scan (``mambapy.pscan``, the scan of a mambapy-based port);
``--conv shift`` times the general path with a shift-and-add conv. Both imply --general, their reference
(``speedup_vs_mambapy`` compares the general path with genodiff's scan and with mambapy's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from genodiff.models import mamba as mamba_mod
from genodiff.models.caduceus import Caduceus, CaduceusConfig


def mambapy_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                 return_last_state=False):
    """selective_scan semantics computed the way mambapy does (materialised (B, L, D, N) + pscan)."""
    from mambapy.pscan import pscan  # noqa: PLC0415

    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    x = u.transpose(1, 2)  # (B, L, D)
    dt = delta.transpose(1, 2)
    deltaA = torch.exp(dt.unsqueeze(-1) * A)  # (B, L, D, N)
    BX = dt.unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2) * x.unsqueeze(-1)
    hs = pscan(deltaA, BX)
    y = (hs @ C.transpose(1, 2).unsqueeze(-1)).squeeze(3)
    if D is not None:
        y = y + D * x
    if z is not None:
        y = y * F.silu(z.transpose(1, 2))
    y = y.transpose(1, 2)
    return (y, hs[:, -1]) if return_last_state else y


def shift_conv1d(x, weight, bias=None, activation=None):
    """Causal depthwise conv as K shifted multiply-adds (experiment for --conv shift; same math as
    genodiff.ops.conv.causal_conv1d). x (B, D, L), weight (D, K), bias (D,) -> (B, D, L)."""
    K, L = weight.shape[1], x.shape[-1]
    xp = F.pad(x, (K - 1, 0))
    out = weight[:, K - 1, None] * x
    if bias is not None:
        out = out + bias[:, None]
    for k in range(K - 1):
        out = out + weight[:, k, None] * xp[..., k:k + L]
    return F.silu(out) if activation in ("silu", "swish") else out


@contextlib.contextmanager
def general_path(scan=None, conv=None):
    """Within the block, Mamba mixers take the general path (no fused mixer kernels), optionally with another
    scan (selective_scan's signature) or conv (causal_conv1d's)."""
    saved = {name: getattr(mamba_mod, name) for name in ("mixer_train_applies", "selective_scan", "causal_conv1d")}
    mamba_mod.mixer_train_applies = lambda *args: False
    if scan is not None:
        mamba_mod.selective_scan = scan
    if conv is not None:
        mamba_mod.causal_conv1d = conv
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(mamba_mod, name, value)


def time_steps(model, ids, steps, warmup):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fwd, bwd, optim, total, cpu = [], [], [], [], []
    for i in range(warmup + steps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        logits = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        c1 = time.process_time()
        if i >= warmup:
            cpu.append(c1 - c0)
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            optim.append(t3 - t2)
            total.append(t3 - t0)
    r = lambda xs: round(statistics.median(xs), 4)  # noqa: E731
    return {"step_s_median": r(total), "step_s_all": [round(x, 4) for x in total], "forward_s": r(fwd),
            "backward_s": r(bwd), "optimizer_s": r(optim), "cpu_s_per_step_median": r(cpu),
            "final_loss": round(loss.item(), 4)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rcps", action="store_true", help="Caduceus-PS instead of Ph")
    ap.add_argument("--general", action="store_true",
                    help="also time the general path (channel-major scan and conv, no fused mixer)")
    ap.add_argument("--mambapy", action="store_true", help="also time the model with mambapy's pscan")
    ap.add_argument("--mambapy-steps", type=int, default=1)
    ap.add_argument("--conv", choices=["ops", "shift", "both"], default="ops",
                    help="ops: genodiff.ops.conv.causal_conv1d (default); shift: a shift-and-add conv "
                         "(experiment); both: time the two side by side")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = CaduceusConfig.paper(rcps=args.rcps)
    model = Caduceus(cfg).train()
    ids = torch.randint(7, 11, (args.batch, args.length))
    result = {
        "model": f"caduceus-{'ps' if args.rcps else 'ph'} d_model={cfg.d_model} n_layer={cfg.n_layer}",
        "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch, "length": args.length, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "loadavg_1min_before": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
    }
    if args.conv in ("ops", "both"):
        result["genodiff"] = time_steps(model, ids, args.steps, args.warmup)
    if args.general or args.mambapy or args.conv != "ops":  # the reference of the general-path variants
        with general_path():
            result["genodiff_general"] = time_steps(model, ids, args.steps, args.warmup)
    if args.conv in ("shift", "both"):
        with general_path(conv=shift_conv1d):
            result["genodiff_shift_conv"] = time_steps(model, ids, args.steps, args.warmup)
    if args.mambapy:
        try:
            import mambapy.pscan  # noqa: F401, PLC0415
        except ImportError:
            result["mambapy"] = "not installed"
        else:
            torch.manual_seed(0)
            model2 = Caduceus(cfg).train()
            with general_path(scan=mambapy_scan):
                result["mambapy"] = time_steps(model2, ids, args.mambapy_steps, 0)
            # like for like: the general path with genodiff's scan vs with mambapy's
            result["speedup_vs_mambapy"] = round(result["mambapy"]["step_s_median"]
                                                 / result["genodiff_general"]["step_s_median"], 2)
    if "genodiff" in result and "genodiff_general" in result:
        result["speedup_fused_vs_general"] = round(result["genodiff_general"]["step_s_median"]
                                                   / result["genodiff"]["step_s_median"], 2)
    result["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
