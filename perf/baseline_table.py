"""The docs/results.md table of tuned baselines vs plain scikit-learn pipelines, from a suite run.

    genodiff benchmark suite benchmark/preset=shared_baselines output_dir=<out>
    python perf/baseline_table.py <out>
    python perf/baseline_table.py <out> --kmer-from <out2>   # k-mer LR column from a second run

``--kmer-from`` takes the tuned k-mer LR column (means and fold accuracies) from another suite run on the same
tasks, e.g. ``"methods=[kmer_lr]" kmer_lr.select=log_loss``; each task's test folds must hold the same records in
both runs (checked on ``predictions.csv``), otherwise the script stops; tasks that run has not finished are left
out of the table and named on its last line.

One row per task: records, the tuned k-mer LR, gkm-SVM, the best plain pipeline (picked AFTER the fact on the
test folds, which favours it) and the issue's reference pipeline (4-mer counts, C = 0.001), accuracy mean ±
(max-min)/2 over the same 5 folds; then tuned k-mer LR minus the best plain pipeline, and the better tuned
baseline (by mean) against the best plain pipeline fold by fold: the mean difference, folds won / lost and the
two-sided paired t-test p-value (``genodiff.benchmarks.metrics.paired_comparison``). The last line counts the
tasks where a tuned baseline is at least as good on average, those where the best plain pipeline or the tuned one
is better at p < 0.05, and the mean and smallest fold-paired difference over the tasks.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from genodiff.benchmarks.metrics import paired_comparison

PLAIN = "sklearn "
REFERENCE = "sklearn 4-mer counts + LR (C=0.001)"


def name_of(task: str) -> str:
    rel = task.split(":", 1)[-1]
    for prefix in ("data/genomic_benchmarks/", "data/gue/"):
        if rel.startswith(prefix):
            rel = ("GB " if "genomic" in prefix else "GUE ") + rel[len(prefix):]
    for suffix in (".csv.gz",):
        rel = rel[: -len(suffix)] if rel.endswith(suffix) else rel
    return rel


def cell(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['half_range']:.3f}"


def suite_rows(root: Path) -> tuple[list[dict], bool]:
    """The suite's rows (``task``, ``report_dir``, ``summary``) and whether the suite has finished; an unfinished
    run (no ``suite.json`` yet) gives the tasks it has finished so far, from their own ``results.json``."""
    if (root / "suite.json").is_file():
        return json.loads((root / "suite.json").read_text())["rows"], True
    rows = []
    for results in sorted(root.glob("*/results.json")):
        res = json.loads(results.read_text())
        rows.append({"task": res["task"], "report_dir": results.parent.name,
                     "summary": {m: {"accuracy": s["accuracy"]} for m, s in res["summary"].items()}})
    return rows, False


def fold_accuracy(results: dict, method: str) -> list[float]:
    """Accuracy of ``method`` per split, in split order."""
    units = sorted((u for u in results["units"] if u["method"] == method), key=lambda u: (u["split"], u["seed"]))
    return [u["metrics"]["accuracy"] for u in units]


def fold_members(report_dir: Path) -> dict[str, list[int]]:
    """Test-set record indices per split, from the first method's rows of ``predictions.csv``."""
    out: dict[str, list[int]] = {}
    with open(report_dir / "predictions.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        first = None
        for rec in reader:
            first = first or rec["method"]
            if rec["method"] == first:
                out.setdefault(rec["split"], []).append(int(rec["test_index"]))
    return out


def replace_kmer_column(row: dict, res: dict, root: Path, other: Path) -> bool:
    """Put the tuned k-mer LR of the run in ``other`` (same task, same folds) in place of ``row``'s/``res``'s;
    False (nothing changed) when that run has not finished the task."""
    theirs_dir = other / row["report_dir"]
    if not (theirs_dir / "results.json").is_file():
        return False
    theirs = json.loads((theirs_dir / "results.json").read_text())
    if fold_members(root / row["report_dir"]) != fold_members(theirs_dir):
        raise SystemExit(f"{theirs_dir}: its test folds differ from {root / row['report_dir']}'s")
    name = next(m for m in theirs["summary"] if m.startswith("k-mer LR"))
    mine = next(m for m in row["summary"] if m.startswith("k-mer LR"))
    row["summary"][mine] = {"accuracy": theirs["summary"][name]["accuracy"]}
    res["units"] = [u for u in res["units"] if u["method"] != mine]
    res["units"] += [dict(u, method=mine) for u in theirs["units"] if u["method"] == name]
    return True


def main(folder: str, kmer_from: str | None = None) -> None:
    root = Path(folder)
    rows, finished = suite_rows(root)
    head = ["task", "records", "k-mer LR (tuned)", "gkm-SVM", "best plain pipeline (post hoc)", "plain 4-mer, C=0.001",
            "tuned - best plain", "better tuned - best plain, by fold (won/lost, paired t p)"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(["---"] * len(head)) + " |")
    wins = significant_losses = significant_wins = 0
    gaps = []
    missing = []
    for row in list(rows):
        res = json.loads((root / row["report_dir"] / "results.json").read_text())
        if kmer_from and not replace_kmer_column(row, res, root, Path(kmer_from)):
            missing.append(row["report_dir"])
            rows.remove(row)
            continue
        n = sum(v["n"] for v in res["data"]["used"].values())
        acc = {m: s["accuracy"] for m, s in row["summary"].items()}
        tuned_name = next(m for m in acc if m.startswith("k-mer LR"))
        gkm_name = next((m for m in acc if m.startswith("gkm-SVM")), None)
        tuned, gkm = acc[tuned_name], acc.get(gkm_name)
        plain = {m: v for m, v in acc.items() if m.startswith(PLAIN)}
        best = max(plain, key=lambda m: plain[m]["mean"])
        short = best[len(PLAIN):].replace(" counts + LR", "")
        delta = tuned["mean"] - plain[best]["mean"]
        wins += max(tuned["mean"], gkm["mean"] if gkm else 0) >= plain[best]["mean"]
        better = gkm_name if gkm and gkm["mean"] > tuned["mean"] else tuned_name
        pair = paired_comparison(fold_accuracy(res, better), fold_accuracy(res, best))
        significant_losses += pair["diff_mean"] < 0 and pair["t_pvalue"] < 0.05
        significant_wins += pair["diff_mean"] > 0 and pair["t_pvalue"] < 0.05
        gaps.append(pair["diff_mean"])
        which = "gkm" if better == gkm_name else "LR"
        by_fold = f"{pair['diff_mean']:+.3f} ({which}; {pair['wins']}/{pair['losses']}, p={pair['t_pvalue']:.2f})"
        print("| " + " | ".join([name_of(row["task"]), f"{n:,}", cell(tuned), cell(gkm) if gkm else "",
                                 f"{cell(plain[best])} ({short})", cell(plain[REFERENCE]) if REFERENCE in plain else "",
                                 f"{delta:+.3f}", by_fold]) + " |")
    print(f"\n{wins} of {len(rows)} tasks: the better tuned baseline >= the best plain pipeline on average; "
          f"{significant_losses} where the best plain pipeline is better by the paired t-test at p < 0.05, "
          f"{significant_wins} where the tuned one is; mean difference over the tasks {sum(gaps) / len(gaps):+.4f}, "
          f"smallest {min(gaps):+.4f}"
          + ("" if finished else " (the suite has not finished: the tasks done so far)")
          + (f"; {len(missing)} tasks left out, not finished by the --kmer-from run: {', '.join(missing)}"
             if missing else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="output_dir of the suite run")
    parser.add_argument("--kmer-from",
                        help="output_dir of a second run whose tuned k-mer LR column replaces this one's")
    args = parser.parse_args()
    main(args.folder, args.kmer_from)
