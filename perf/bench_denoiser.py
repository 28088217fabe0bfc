"""Time one denoiser call (a model forward without autograd) of the tiny Caduceus-PS and the paper's Caduceus-Ph,
and where its time goes; optionally side by side with another checkout of genodiff (e.g. the last release).

    python perf/bench_denoiser.py [--threads 2] [--length 1024] [--batches 1,10] [--reps 10]
                                  [--baseline-src /path/to/other/checkout] [--rounds 2] [--out results.json]
                                  [--plain-malloc]

Prints one JSON object. Each (model, batch) is timed in a fresh subprocess (after 3 warm-up calls): best and
median wall seconds of ``--reps`` calls, and a torch.profiler breakdown of 3 more calls into op groups:
``scan`` (selective scan incl. the fused mixer kernels), ``conv``, ``projections`` (matmuls), ``elementwise``
(softplus, SiLU, exp, adds and multiplies), ``norms``, ``rc_flips_copies`` (flip, cat, index, copy),
``other_ops`` and ``python_dispatch`` (wall time no op accounts for; profiler overhead included). With ``--baseline-src`` the same
measurement runs with that checkout first on ``PYTHONPATH``, alternating ``--rounds`` times, and the ratio of
best times is reported. Models have random weights (the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

GROUPS = {
    "scan": ("_ScanFn", "fwd", "bwd", "scan_tm", "selective_scan"),
    "conv": ("conv_tm", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::conv1d"),
    "projections": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
    "norms": ("aten::pow", "aten::rsqrt", "aten::mean", "aten::layer_norm", "aten::native_layer_norm"),
    "rc_flips_copies": ("aten::flip", "aten::cat", "aten::index", "aten::index_select", "aten::copy_",
                        "aten::clone", "aten::contiguous"),
    "elementwise": ("aten::softplus", "aten::silu", "aten::exp", "aten::add", "aten::mul", "aten::sub",
                    "aten::div", "aten::neg", "aten::sigmoid"),
}


def _group(name: str) -> str:
    for group, keys in GROUPS.items():
        if name.startswith(keys):
            return group
    return "other_ops"


def measure(model_name: str, batch: int, length: int, threads: int, reps: int, plain_malloc: bool = False) -> dict:
    """Run in the child process: time and profile denoiser calls of one model at one batch size.

    Like the CLI, a checkout that has :func:`genodiff.ops.allocator.keep_freed_memory` applies it first
    (``plain_malloc``: do not, to show what it is worth)."""
    import torch  # noqa: PLC0415

    try:
        from genodiff.ops.allocator import keep_freed_memory  # noqa: PLC0415 - absent in older checkouts
    except ImportError:
        kept = None
    else:
        kept = False if plain_malloc else keep_freed_memory()
    from torch.profiler import ProfilerActivity, profile, record_function  # noqa: PLC0415

    from genodiff.models.caduceus import Caduceus, CaduceusConfig  # noqa: PLC0415

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = (CaduceusConfig(d_model=48, n_layer=2, rcps=True, fused_add_norm=True) if model_name == "tiny_ps"
           else CaduceusConfig.paper())
    model = Caduceus(cfg).eval()
    ids = torch.randint(0, 5, (batch, length))
    try:  # label the fused mixer kernels (absent in older checkouts)
        from genodiff.ops import _scan_numba  # noqa: PLC0415

        launch = _scan_numba._launch

        def labelled(k, name, *args, **kwargs):
            with record_function(name):
                return launch(k, name, *args, **kwargs)

        _scan_numba._launch = labelled
    except (ImportError, AttributeError):
        pass
    with torch.no_grad():  # what the samplers use (inference_mode hides custom autograd Functions from the profiler)
        for _ in range(3):
            model(ids)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - t0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(3):
                model(ids)
            prof_wall = (time.perf_counter() - t0) / 3
    groups = dict.fromkeys(list(GROUPS) + ["other_ops"], 0.0)
    other = {}
    for evt in prof.key_averages():
        groups[_group(evt.key)] += evt.self_cpu_time_total / 1e6 / 3
        if _group(evt.key) == "other_ops":
            other[evt.key] = evt.self_cpu_time_total / 1e6 / 3
    # an op's self time is wall time on the calling thread; what the ops do not cover is Python and dispatch
    op_cpu = sum(groups.values())
    groups["python_dispatch"] = max(0.0, prof_wall - op_cpu)
    groups_share = {k: round(v / prof_wall, 4) for k, v in groups.items()}
    return {"model": model_name, "batch": batch, "length": length, "threads": threads, "freed_memory_kept": kept,
            "parameters": sum(p.numel() for p in model.parameters()),
            "best_s": min(times), "median_s": statistics.median(times),
            "profiled_wall_s": prof_wall, "op_cpu_s": op_cpu, "op_groups_cpu_s": groups,
            "op_groups_share": groups_share,
            "other_ops_top": dict(sorted(other.items(), key=lambda kv: -kv[1])[:5])}


def _child(src: str | None, args, model_name: str, batch: int) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, __file__, "--child", model_name, str(batch), "--length", str(args.length),
           "--threads", str(args.threads), "--reps", str(args.reps)] + (["--plain-malloc"] if args.plain_malloc else [])
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--batches", default="1,10")
    ap.add_argument("--models", default="tiny_ps,paper_ph")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--baseline-src", default=None, help="another genodiff checkout to time side by side")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--plain-malloc", action="store_true",
                    help="do not apply genodiff.ops.allocator.keep_freed_memory (as the CLI does) in the children")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.length, args.threads, args.reps,
                                 args.plain_malloc)))
        return {}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = ""
    rows = []
    for model_name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            current, baseline = [], []
            for _ in range(args.rounds):
                if args.baseline_src:
                    baseline.append(_child(args.baseline_src, args, model_name, batch))
                current.append(_child(None, args, model_name, batch))
            best = min(current, key=lambda r: r["best_s"])
            row = {"model": model_name, "batch": batch, "current": best,
                   "current_best_s": best["best_s"], "current_median_s": statistics.median(
                       r["median_s"] for r in current)}
            if baseline:
                bbest = min(baseline, key=lambda r: r["best_s"])
                row.update(baseline=bbest, baseline_best_s=bbest["best_s"],
                           baseline_median_s=statistics.median(r["median_s"] for r in baseline),
                           speedup_best=bbest["best_s"] / best["best_s"],
                           speedup_median=statistics.median(r["median_s"] for r in baseline)
                           / row["current_median_s"])
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("current", "baseline")}), file=sys.stderr)
    result = {"bench": "denoiser_call", "commit": commit, "baseline_src": args.baseline_src,
              "threads": args.threads, "length": args.length, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "rows": rows}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
