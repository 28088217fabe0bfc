"""End-to-end wall time of ``genodiff sample`` as a user runs it (process start, config, model load, sampling,
writing the FASTA), optionally side by side with another checkout of genodiff.

    python perf/bench_sample_cli.py [--args "num_samples=10 length=1024"] [--threads 2] [--rounds 3]
                                    [--baseline-src /path/to/other/checkout] [--baseline-args "..."] [--out JSON]

Each run is a fresh ``python -m genodiff.cli sample <args> output_dir=<tmp> progress=false`` process; the
checkouts alternate (``PYTHONPATH`` first entry), ``--rounds`` times each, after one untimed warm-up run per
checkout (numba's on-disk kernel cache, the OS file cache). Both checkouts read *this* checkout's configs (the
editable install resolves ``genodiff.configs``), so ``--baseline-args`` (default: ``--args``) must spell out
the baseline's own defaults where they differ (e.g. ``steps=256`` before 2026-11-30). Reports best and median wall seconds and the denoiser calls each run made (from
the run's ``samples.json``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(src: Path, args: list[str], threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_sample_cli_") as tmp:
        env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
        cmd = [sys.executable, "-m", "genodiff.cli", "sample", *args, f"output_dir={tmp}/out", "progress=false",
               f"num_threads={threads}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{src}: genodiff sample failed:\n{proc.stderr[-2000:]}")
        summary = json.loads((Path(tmp) / "out" / "samples.json").read_text())
        return {"wall_s": round(wall, 3), "denoiser_calls": summary["denoiser_calls"],
                "sampling_s": summary["seconds"], "sampler": summary["sampler"]["sampler"],
                "steps": summary["sampler"]["steps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--args", default="num_samples=10 length=1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--baseline-args", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    checkouts = {"this": (REPO, shlex.split(args.args))}
    if args.baseline_src:
        checkouts["baseline"] = (Path(args.baseline_src).resolve(), shlex.split(args.baseline_args or args.args))
    for src, argv in checkouts.values():  # warm-up: numba cache, file cache
        run_once(src, argv, args.threads)
    runs: dict[str, list[dict]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, (src, argv) in checkouts.items():
            runs[name].append(run_once(src, argv, args.threads))
            print(name, json.dumps(runs[name][-1]), file=sys.stderr, flush=True)
    result = {"threads": args.threads, "rounds": args.rounds, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "checkouts": {}}
    for name, (src, argv) in checkouts.items():
        walls = [r["wall_s"] for r in runs[name]]
        result["checkouts"][name] = {"src": str(src), "args": argv, "best_wall_s": min(walls),
                                     "median_wall_s": statistics.median(walls), "runs": runs[name]}
    if "baseline" in result["checkouts"]:
        this, base = result["checkouts"]["this"], result["checkouts"]["baseline"]
        result["speedup_best"] = round(base["best_wall_s"] / this["best_wall_s"], 2)
        result["speedup_median"] = round(base["median_wall_s"] / this["median_wall_s"], 2)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
