"""Selective scan forward+backward on CPU: genodiff fast CPU kernel vs mambapy's parallel scan vs the
float64 sequential reference (and genodiff's pure-torch blocked fallback), side by side in one run.

    python perf/bench_scan.py [--batch 4 --dim 256 --L 1024 --N 16 --reps 7 --ref-L 1024 --no-blocked]

Prints one JSON object: wall times (median and min of ``--reps`` interleaved rounds after one
warm-up each; also the process CPU time of fwd+bwd, summed over threads, which is steadier on a
shared machine) of the
forward alone and of forward+backward of ``sum(out * w)`` w.r.t. u, delta, A, B, C, D, and the max
abs differences of the outputs and of every gradient between the implementations (all on the same
float32 inputs; the reference runs in float64). The reference is timed once at ``--ref-L`` (default:
the full L) and, when ``--ref-L`` < L, extrapolated linearly to L (flagged in the JSON).

mambapy (``pip install mambapy``, a dev/perf extra only) computes ``y + D * x`` from ``(x, delta, A,
B, C, D)`` in (batch, L, dim) layout; genodiff is called with the same semantics (no delta bias,
no softplus, no z) in its (batch, dim, L) layout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch


def make_inputs(batch, dim, L, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, L, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(batch, dim, L, generator=g) * 0.5 - 2.0)
    A = -torch.exp(torch.randn(dim, N, generator=g) * 0.5)  # Mamba: A = -exp(A_log)
    B = torch.randn(batch, N, L, generator=g)
    C = torch.randn(batch, N, L, generator=g)
    D = torch.randn(dim, generator=g)
    w = torch.randn(batch, dim, L, generator=g)  # loss weights: loss = sum(out * w)
    return (u, delta, A, B, C, D), w


NAMES = ("u", "delta", "A", "B", "C", "D")


def genodiff_fn(backend):
    from genodiff.ops.selective_scan import selective_scan

    def f(u, delta, A, B, C, D):
        return selective_scan(u, delta, A, B, C, D, backend=backend)

    return f


def mambapy_fn():
    from mambapy.mamba import MambaBlock

    def f(u, delta, A, B, C, D):
        # MambaBlock.selective_scan does not use `self`; layout (batch, L, dim) / (batch, L, N)
        y = MambaBlock.selective_scan(None, u.transpose(1, 2), delta.transpose(1, 2), A,
                                      B.transpose(1, 2), C.transpose(1, 2), D)
        return y.transpose(1, 2)

    return f


def run_once(fn, inputs, w, backward=True):
    leaves = [t.detach().clone().requires_grad_(backward) for t in inputs]
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*leaves)
    t1 = time.perf_counter()
    grads = None
    if backward:
        grads = torch.autograd.grad((out * w.to(out.dtype)).sum(), leaves)
    t2 = time.perf_counter()
    run_once.cpu_s = time.process_time() - c0  # CPU time of all threads of this process
    return out.detach(), grads, t1 - t0, t2 - t0


def bench_interleaved(impls, inputs, w, reps):
    """One warm-up each, then ``reps`` rounds; every round runs each implementation once (fwd alone,
    then fwd+bwd), so load changes on a shared machine hit all implementations alike."""
    outs, fwd, tot, cpu = {}, {k: [] for k in impls}, {k: [] for k in impls}, {k: [] for k in impls}
    for name, fn in impls.items():
        out, grads, _, _ = run_once(fn, inputs, w)  # warm-up (numba: load/compile)
        outs[name] = (out, grads)
    for _ in range(reps):
        for name, fn in impls.items():
            with torch.no_grad():
                t0 = time.perf_counter()
                fn(*inputs)
                fwd[name].append(time.perf_counter() - t0)
            tot[name].append(run_once(fn, inputs, w)[3])
            cpu[name].append(run_once.cpu_s)
    times = {name: {
        "fwd_median_s": statistics.median(fwd[name]), "fwd_min_s": min(fwd[name]),
        "fwd_bwd_median_s": statistics.median(tot[name]), "fwd_bwd_min_s": min(tot[name]),
        "fwd_bwd_cpu_median_s": statistics.median(cpu[name]),
    } for name in impls}
    return outs, times


def maxdiff(a, b):
    return float((a.double() - b.double()).abs().max())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ref-L", type=int, default=None, help="sequence length for timing the reference")
    p.add_argument("--no-blocked", action="store_true", help="skip the pure-torch blocked fallback")
    args = p.parse_args(argv)

    from genodiff.ops import available_kernels

    inputs, w = make_inputs(args.batch, args.dim, args.L, args.N)
    res = {
        "config": {"batch": args.batch, "dim": args.dim, "L": args.L, "dstate": args.N, "dtype": "float32",
                   "reps": args.reps, "loss": "sum(out * w), grads w.r.t. u, delta, A, B, C, D"},
        "machine": {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "python": sys.version.split()[0], "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0]},
        "kernels": available_kernels(),
        "times": {},
        "max_abs_diff": {},
    }
    try:
        import numba

        res["machine"]["numba"] = numba.__version__
        res["machine"]["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass

    impls = {}
    if res["kernels"]["cpu_fast_scan"]:
        impls["genodiff_numba"] = genodiff_fn("numba")
    if not args.no_blocked:
        impls["genodiff_blocked_torch"] = genodiff_fn("blocked")
    try:
        impls["mambapy_pscan"] = mambapy_fn()
        import mambapy

        res["machine"]["mambapy"] = getattr(mambapy, "__version__", "installed")
    except ImportError:
        res["mambapy_pscan"] = "not installed (pip install mambapy)"

    outs, res["times"] = bench_interleaved(impls, inputs, w, args.reps)

    # float64 sequential reference: outputs/grads at full L for the differences; timed at ref-L
    ref_fn = genodiff_fn("reference")
    inputs64 = [t.double() for t in inputs]
    out_r, g_r, tf, tt = run_once(ref_fn, inputs64, w.double())
    ref_L = args.ref_L or args.L
    if ref_L != args.L:
        small = [t[..., :ref_L] if t.dim() == 3 else t for t in inputs64]
        _, _, tf, tt = run_once(ref_fn, small, w.double()[..., :ref_L])
        scale = args.L / ref_L
        res["times"]["reference_seq_float64"] = {
            "fwd_s": tf * scale, "fwd_bwd_s": tt * scale, "timed_at_L": ref_L,
            "extrapolated_linearly_to_L": True}
    else:
        res["times"]["reference_seq_float64"] = {"fwd_s": tf, "fwd_bwd_s": tt, "timed_at_L": ref_L,
                                                 "extrapolated_linearly_to_L": False}
    outs["reference_seq_float64"] = (out_r, g_r)

    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            oa, ga = outs[a]
            ob, gb = outs[b]
            res["max_abs_diff"][f"{a}__vs__{b}"] = {
                "out": maxdiff(oa, ob), **{f"d{n}": maxdiff(x, y) for n, x, y in zip(NAMES, ga, gb)}}
    res["max_abs_reference"] = {"out": float(out_r.abs().max()),
                                **{f"d{n}": float(g.abs().max()) for n, g in zip(NAMES, g_r)}}

    if "genodiff_numba" in res["times"] and "mambapy_pscan" in res["times"]:
        t = res["times"]
        res["speedup_numba_vs_mambapy"] = {
            "fwd_bwd_median": t["mambapy_pscan"]["fwd_bwd_median_s"] / t["genodiff_numba"]["fwd_bwd_median_s"],
        "fwd_bwd_min": t["mambapy_pscan"]["fwd_bwd_min_s"] / t["genodiff_numba"]["fwd_bwd_min_s"],
            "fwd_median": t["mambapy_pscan"]["fwd_median_s"] / t["genodiff_numba"]["fwd_median_s"],
        "fwd_bwd_cpu_time_median": (t["mambapy_pscan"]["fwd_bwd_cpu_median_s"]
                                    / t["genodiff_numba"]["fwd_bwd_cpu_median_s"]),
        }
        res["speedup_numba_vs_reference_fwd_bwd"] = (
            t["reference_seq_float64"]["fwd_bwd_s"] / t["genodiff_numba"]["fwd_bwd_median_s"])
    res["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
