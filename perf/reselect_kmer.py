"""Re-select the tuned k-mer LR of a finished benchmark suite by another rule, without recomputing its grid.

    python perf/reselect_kmer.py outputs/baselines outputs/baselines_reselected --select log_loss \
        [--check outputs/baselines_ll] [--check ...]
    python perf/baseline_table.py outputs/baselines --kmer-from outputs/baselines_reselected

The validation scores of the k-mer LR grid (accuracy and log-loss of every (k, canonical, view, C) point, on the
inner split or the inner CV) do not depend on the selection rule (``tests/benchmarks/test_kmer.py``), and every
fold's ``results.json`` keeps them. So a suite run with one rule already holds everything the other rule
chooses from: this script reruns each task of SOURCE through genodiff's own benchmark code
(:func:`genodiff.tasks.benchmark.run_task` with the stored config, ``methods=[kmer_lr]`` and
``kmer_lr.select=<rule>``) while :meth:`KmerLogReg.grid_scores` answers from the stored grid of the fold whose
test records are the same (matched on SOURCE's ``predictions.csv``). Folds, selection, the refit on train + val
and the test scores are the real code paths; only the ~250 x 5 grid fits per fold are skipped (hours -> seconds).
The stored scores are rounded to 5 decimals, so a near-tie can in principle break the other way than in a full
run: ``--check`` compares the choices and fold accuracies with a suite that computed its grid (the tasks it has
finished) and exits non-zero on any difference.

Reports go to DEST/<task folder>/ (``report.md`` names this script and SOURCE instead of a genodiff command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from baseline_table import fold_members
from genodiff.benchmarks.kmer import KmerLogReg
from genodiff.tasks.benchmark import run_task

LABEL = "k-mer LR (tuned)"


def stored_grids(task_dir: Path) -> dict:
    """``frozenset(test indices) -> {(option, canonical, view, C): (val accuracy, val log-loss)}`` per fold."""
    members = fold_members(task_dir)
    results = json.loads((task_dir / "results.json").read_text())
    grids = {}
    for unit in results["units"]:
        if unit["method"] == LABEL:
            grid = {(o, bool(c), v, float(C)): (a, ll) for o, c, v, C, a, ll in unit["info"]["grid"]}
            grids[frozenset(members[unit["split"]])] = grid
    return grids


class StoredGrid:
    """Patches :class:`KmerLogReg` so that ``grid_scores`` returns the stored scores of the current fold."""

    def __init__(self):
        self.grids: dict = {}
        self.current = None
        self._fit = KmerLogReg.fit_indexed

    def install(self) -> None:
        patch = self

        def fit_indexed(model, data, train_index, val_index):
            rest = np.setdiff1d(np.arange(len(data)), np.concatenate([train_index, val_index]))
            patch.current = patch.grids.get(frozenset(rest.tolist()))
            if patch.current is None:
                raise SystemExit("no stored fold has this fold's test records (different folds or data?)")
            return patch._fit(model, data, train_index, val_index)

        def grid_scores(model, table, y, grid, pairs):
            wanted = {(*cfg, float(C)) for cfg in grid for C in model.Cs}
            if set(patch.current) != wanted:
                raise SystemExit("the stored grid is not this configuration's grid (other ks, views or Cs?)")
            return dict(patch.current)

        KmerLogReg.fit_indexed, KmerLogReg.grid_scores = fit_indexed, grid_scores


def compare(dest: Path, check: Path) -> list[str]:
    """Differences (choice or test accuracy per fold) between DEST and CHECK on the tasks both have."""
    problems = []
    for res_path in sorted(check.glob("*/results.json")):
        mine = dest / res_path.parent.name / "results.json"
        if not mine.is_file():
            continue
        units = {}
        for path in (res_path, mine):
            for u in json.loads(path.read_text())["units"]:
                if u["method"] == LABEL:
                    units.setdefault(u["split"], []).append((u["info"]["choice"], u["metrics"]["accuracy"]))
        for split, pair in sorted(units.items()):
            if len(pair) == 2 and pair[0] != pair[1]:
                problems.append(f"{res_path.parent.name} {split}: computed {pair[0]} vs reselected {pair[1]}")
        print(f"check {res_path.parent.name}: {len(units)} folds compared", file=sys.stderr)
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="output_dir of the finished suite run whose k-mer LR grids are reused")
    ap.add_argument("dest", help="where the re-selected reports go (one folder per task)")
    ap.add_argument("--select", default="log_loss", choices=["log_loss", "accuracy"])
    ap.add_argument("--check", action="append", default=[],
                    help="a folder of task reports (a suite's output_dir) computed with the same rule; repeatable")
    args = ap.parse_args()
    source, dest = Path(args.source), Path(args.dest)
    rows = json.loads((source / "suite.json").read_text())["rows"]
    patch = StoredGrid()
    patch.install()
    for row in rows:
        task_dir = source / row["report_dir"]
        out = dest / row["report_dir"]
        if (out / "results.json").is_file():
            print(f"{row['report_dir']}: done earlier", file=sys.stderr)
            continue
        stored = json.loads((task_dir / "results.json").read_text())
        cfg = OmegaConf.create(stored["config"])
        cfg.methods = ["kmer_lr"]
        cfg.kmer_lr.select = args.select
        cfg.n_jobs, cfg.progress = 1, False
        patch.grids = stored_grids(task_dir)
        command = f"python perf/reselect_kmer.py {source} {dest} --select {args.select}  # grids of {task_dir}"
        run_task(cfg, row["task"], out, command)
    if args.check:
        problems = [line for folder in args.check for line in compare(dest, Path(folder))]
        for line in problems:
            print(f"DIFFERENT: {line}", file=sys.stderr)
        if problems:
            sys.exit(1)
        print("check: every compared fold has the same choice and test accuracy", file=sys.stderr)


if __name__ == "__main__":
    main()
