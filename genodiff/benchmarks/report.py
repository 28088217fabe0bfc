"""Benchmark reports: report.md, results.csv, results.json, predictions.csv and PNG plots.

Everything is written into a hidden staging folder inside the output folder and moved into place only
after every file was written, so a failed run leaves no half-written report.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np
from sklearn.metrics import confusion_matrix, roc_curve

from genodiff.analysis.plots import finish_figure, new_figure
from genodiff.benchmarks.duplicates import format_duplicates
from genodiff.benchmarks.metrics import METRICS, paired_comparison, summarize
from genodiff.benchmarks.published import PUBLISHED_MODELS, PUBLISHED_SOURCE

__all__ = ["aggregate", "environment", "write_report", "fmt_pm", "StagedOutput", "write_suite_report"]


def fmt_pm(s: dict, digits: int = 3) -> str:
    if not s or s.get("n", 0) == 0 or s["mean"] is None or math.isnan(s["mean"]):
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['half_range']:.{digits}f}"


def _git_commit() -> Optional[dict]:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    versions = {}
    for pkg in ("genodiff", "torch", "numpy", "scikit-learn", "pandas", "hydra-core", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "git": _git_commit(), "argv": list(sys.argv)}


def aggregate(results: list) -> dict:
    """Per method: per-split metrics, summaries (mean/std/half_range) and pooled predictions."""
    out = {}
    for r in results:
        m = out.setdefault(r["method"], {"units": [], "y_true": [], "proba": [], "index": []})
        m["units"].append(r)
        m["y_true"] += r["y_true"]
        m["proba"] += r["proba"]
    for m in out.values():
        m["summary"] = {k: summarize([u["metrics"][k] for u in m["units"]]) for k in METRICS}
    return out


def _table_row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _accuracy_range(agg: dict) -> tuple:
    acc = [u["metrics"]["accuracy"] for a in agg.values() for u in a["units"]]
    lo, hi = (min(acc), max(acc)) if acc else (0.0, 1.0)
    pad = max(0.02, (hi - lo) * 0.15)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def _summary_plot(agg: dict, folder: Path) -> str:
    """All methods in one figure: every split's accuracy (dots), the mean (diamond) and the papers' spread
    mean ± (max-min)/2 (bar), methods sorted by mean."""
    methods = sorted(agg, key=lambda m: agg[m]["summary"]["accuracy"]["mean"])
    fig, ax = new_figure(figsize=(7, 1.2 + 0.38 * len(methods)))
    for i, m in enumerate(methods):
        acc = [u["metrics"]["accuracy"] for u in agg[m]["units"]]
        s = agg[m]["summary"]["accuracy"]
        ax.scatter(acc, [i] * len(acc), s=14, color="0.55", zorder=2, label="split" if i == 0 else None)
        ax.errorbar([s["mean"]], [i], xerr=[[s["half_range"]], [s["half_range"]]], fmt="D", color="C3", ms=6,
                    capsize=4, zorder=3, label="mean ± (max-min)/2" if i == 0 else None)
        ax.annotate(f"{s['mean']:.3f}", (s["mean"], i), xytext=(0, 7), textcoords="offset points", ha="center",
                    fontsize=7)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods, fontsize=7)
    ax.set_ylim(-0.7, len(methods) + 0.6)  # room for the legend above the top row
    ax.set_xlim(*_accuracy_range(agg))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("all methods: accuracy over splits", fontsize=9)
    return finish_figure(fig, ax, folder / "summary.png", xlabel="accuracy", ylabel="")


def _per_fold_plot(agg: dict, folder: Path) -> str:
    """Accuracy of every method on every split (one marker series per method)."""
    methods = list(agg)
    splits = [u["split"] for u in agg[methods[0]]["units"]] if methods else []
    fig, ax = new_figure(figsize=(7, 3.8))
    x = np.arange(len(splits))
    width = 0.6 / max(1, len(methods))
    markers = "osD^v<>phX*"
    for i, m in enumerate(methods):
        acc = [u["metrics"]["accuracy"] for u in agg[m]["units"]]
        ax.plot(x - 0.3 + (i + 0.5) * width, acc, marker=markers[i % len(markers)], lw=0.8, ms=5,
                color=f"C{i % 10}", label=m)
    ax.set_xticks(x)
    ax.set_xticklabels(splits)
    ax.set_ylim(*_accuracy_range(agg))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("accuracy per split", fontsize=9)
    ax.set_xlabel("split")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(folder / "per_fold.png", dpi=100)
    return "per_fold.png"


def _plots(agg: dict, classes: list, folder: Path) -> list:
    files = [_summary_plot(agg, folder), _per_fold_plot(agg, folder)]
    methods = list(agg)
    for i, m in enumerate(methods):
        y = np.asarray(agg[m]["y_true"])
        p = np.asarray(agg[m]["proba"])
        slug = f"m{i}"
        cm = confusion_matrix(y, p.argmax(1), labels=list(range(len(classes))))
        fig, ax = new_figure(figsize=(3.5, 3.2))
        ax.imshow(cm, cmap="Blues")
        for a in range(cm.shape[0]):
            for b in range(cm.shape[1]):
                ax.text(b, a, str(cm[a, b]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels(classes, rotation=30, fontsize=7)
        ax.set_yticks(range(len(classes)))
        ax.set_yticklabels(classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{m} (all splits pooled)", fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"confusion_{slug}.png", dpi=100)
        files.append(f"confusion_{slug}.png")
        agg[m]["confusion"] = cm.tolist()
        if len(classes) == 2 and len(np.unique(y)) == 2:
            fig, ax = new_figure(figsize=(3.5, 3.2))
            for u in agg[m]["units"]:
                fpr, tpr, _ = roc_curve(u["y_true"], np.asarray(u["proba"])[:, 1])
                ax.plot(fpr, tpr, lw=1, label=f"{u['split']} {u['metrics']['auroc']:.3f}")
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.set_title(f"ROC {m}", fontsize=8)
            ax.legend(fontsize=6)
            fig.tight_layout()
            fig.savefig(folder / f"roc_{slug}.png", dpi=100)
            files.append(f"roc_{slug}.png")
    return files


class StagedOutput:
    """Write into ``<out>/.staging-<pid>/``; :meth:`commit` moves the files into ``<out>``."""

    def __init__(self, out_dir):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.stage = self.out / f".staging-{os.getpid()}"
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir()

    def commit(self) -> list:
        names = sorted(p.name for p in self.stage.iterdir())
        for name in names:
            os.replace(self.stage / name, self.out / name)
        self.stage.rmdir()
        return [str(self.out / n) for n in names]

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _clean(o):
    """NaN -> None so results.json is strict JSON."""
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def paired_results(agg: dict, pairs: list) -> list:
    """For each ``(a, b)`` method pair: :func:`paired_comparison` of every metric over the splits both ran,
    matched by ``(split, seed)``. Pairs with a method that did not run are skipped."""
    out = []
    for a, b in pairs:
        if a not in agg or b not in agg:
            continue
        units_b = {(u["split"], u["seed"]): u for u in agg[b]["units"]}
        matched = [(u, units_b[(u["split"], u["seed"])]) for u in agg[a]["units"] if (u["split"], u["seed"]) in units_b]
        if len(matched) < 2:
            continue
        out.append({"a": a, "b": b, "splits": [ua["split"] for ua, _ in matched],
                    "metrics": {k: paired_comparison([ua["metrics"][k] for ua, _ in matched],
                                                     [ub["metrics"][k] for _, ub in matched]) for k in METRICS}})
    return out


def write_report(out_dir, *, task: str, data_desc: dict, protocol: dict, results: list, config: dict,
                 command: str = "", published: Optional[dict] = None, duplicates: Optional[dict] = None,
                 paired: Optional[list] = None) -> dict:
    """Write the report of one task. Returns ``{"files": [...], "summary": {method: {metric: summary}}}``.
    ``paired``: ``(a, b)`` method labels to compare split by split (differences a - b with a paired t-test and
    an exact Wilcoxon test; ``results.json`` ``paired``)."""
    agg = aggregate(results)
    comparisons = paired_results(agg, paired or [])
    classes = data_desc["classes"]
    stage = StagedOutput(out_dir)
    try:
        folder = stage.stage
        plots = _plots(agg, classes, folder)
        # results.csv
        with open(folder / "results.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["task", "method", "split", "seed", *METRICS, "n_train", "n_val", "n_test", "seconds"])
            for m, a in agg.items():
                for u in a["units"]:
                    w.writerow([task, m, u["split"], u["seed"], *[_fmt(u["metrics"][k]) for k in METRICS],
                                u["n_train"], u["n_val"], u["n_test"], u["seconds"]])
                for stat in ("mean", "std", "half_range"):
                    w.writerow([task, m, stat, "", *[_fmt(a["summary"][k][stat]) for k in METRICS], "", "", "", ""])
        # predictions.csv
        with open(folder / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["method", "split", "test_index", "y_true", *[f"p_{c}" for c in classes]])
            for m, a in agg.items():
                for u in a["units"]:
                    for i, y, p in zip(u["test_index"], u["y_true"], u["proba"]):
                        w.writerow([m, u["split"], i, y, *[f"{v:.6g}" for v in p]])
        summary = {m: a["summary"] for m, a in agg.items()}
        payload = {"task": task, "command": command, "data": data_desc, "label_map": data_desc["label_map"],
                   "protocol": protocol, "config": config, "environment": environment(),
                   "summary": summary, "duplicates": duplicates, "paired": comparisons,
                   "units": [{k: v for k, v in u.items() if k not in ("proba", "y_true", "test_index")}
                             for u in results],
                   "confusion": {m: a.get("confusion") for m, a in agg.items()}}
        (folder / "results.json").write_text(json.dumps(_clean(payload), indent=2, default=_json_default) + "\n")
        (folder / "report.md").write_text(_markdown(task, data_desc, protocol, agg, plots, command, payload,
                                                    published, duplicates, comparisons))
        files = stage.commit()
    except BaseException:
        stage.abort()
        raise
    return {"files": files, "summary": summary}


def _fmt(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6f}"


def _choice_text(info: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in (info.get("choice") or {}).items() if v is not None)
    if info.get("val_accuracy") is not None:
        text += f" (val accuracy {info['val_accuracy']:.4f}, best of {len(info.get('grid') or [])} grid points)"
    return text


def _paired_lines(comparisons: list) -> list:
    lines = ["", "### Paired comparisons (same splits)", "",
             "Difference A - B per split, mean ± (max-min)/2; wins/ties/losses of A; two-sided p-values of the paired "
             "t-test and of the exact Wilcoxon signed-rank test (with 5 splits its smallest possible p is 0.0625).", "",
             _table_row(["A", "B", "metric", "A - B", "per split", "wins/ties/losses", "paired t p", "Wilcoxon p"]),
             _table_row(["---"] * 8)]
    for c in comparisons:
        for k in ("accuracy", "auroc"):
            r = c["metrics"][k]
            lines.append(_table_row([c["a"], c["b"], k, f"{r['diff_mean']:+.4f} ± {r['diff_half_range']:.4f}",
                                     " ".join(f"{d:+.3f}" for d in r["diff"]), f"{r['wins']}/{r['ties']}/{r['losses']}",
                                     f"{r['t_pvalue']:.3g}", f"{r['wilcoxon_pvalue']:.3g}"]))
    return lines


def _markdown(task, data_desc, protocol, agg, plots, command, payload, published, duplicates=None,
              comparisons=None) -> str:
    lines = [f"# genodiff benchmark: {task}", ""]
    if command:
        lines += ["Reproduce with:", "", "```", command, "```", ""]
    env = payload["environment"]
    git = env.get("git") or {}
    lines += [f"genodiff {env['versions'].get('genodiff')}, torch {env['versions'].get('torch')}, scikit-learn "
              f"{env['versions'].get('scikit-learn')}, git {git.get('commit', 'unknown')}"
              f"{' (uncommitted changes)' if git.get('dirty') else ''}.", ""]
    lines += ["## Data", "", f"Source: `{data_desc.get('source')}`", "",
              "Class mapping (class names sorted; id = position):", ""]
    lines += [_table_row(["id", "class"]), _table_row(["---", "---"])]
    lines += [_table_row([i, f"`{c}`"]) for c, i in data_desc["label_map"].items()]
    lines += ["", _table_row(["split", "records", "class counts", "length"]), _table_row(["---"] * 4)]
    for name, s in data_desc["splits"].items():
        counts = ", ".join(f"{k}: {v}" for k, v in s["class_counts"].items())
        lines.append(_table_row([name, s["n"], counts, f"{s['min_length']}-{s['max_length']}"]))
    if data_desc.get("notes"):
        lines += [""] + [f"- {n}" for n in data_desc["notes"]]
    if duplicates:
        lines += ["", "## Duplicates (exact, either strand)", ""]
        lines += [f"- {line}" for line in format_duplicates(duplicates)]
    lines += ["", "## Protocol", ""]
    lines += [f"- {k}: {v}" for k, v in protocol.items()]
    lines += ["", "## Results", "",
              "mean ± (max-min)/2 over splits (the papers' ±); standard deviation in results.csv/json.", ""]
    lines += [_table_row(["method", *METRICS, "std(acc)", "seconds"]), _table_row(["---"] * (len(METRICS) + 3))]
    for m, a in agg.items():
        secs = sum(u["seconds"] for u in a["units"])
        lines.append(_table_row([m, *[fmt_pm(a["summary"][k]) for k in METRICS],
                                 f"{a['summary']['accuracy']['std']:.3f}", f"{secs:.0f}"]))
    if published:
        caveat = ("" if str(protocol.get("protocol", "")).startswith("paper") else
                  " They come from the paper protocol on the official train/test split, not from this "
                  "cross-validation, so they are context, not a like-for-like comparison.")
        lines += ["", f"Published accuracy for reference ({published['source']}).{caveat}", "",
                  _table_row(list(published["values"])), _table_row(["---"] * len(published["values"])),
                  _table_row([f"{v[0]:.3f} ± {v[1]:.3f}" for v in published["values"].values()])]
    if comparisons:
        lines += _paired_lines(comparisons)
    lines += ["", "### Per split", "", _table_row(["method", "split", "seed", *METRICS, "n_train/val/test"]),
              _table_row(["---"] * (len(METRICS) + 4))]
    for m, a in agg.items():
        for u in a["units"]:
            lines.append(_table_row([m, u["split"], u["seed"], *[_fmt(u["metrics"][k])[:6] or "n/a" for k in METRICS],
                                     f"{u['n_train']}/{u['n_val']}/{u['n_test']}"]))
    chosen = [(m, u) for m, a in agg.items() for u in a["units"] if (u.get("info") or {}).get("choice")]
    if chosen:
        lines += ["", "### Model selection (inner validation split only)", "",
                  "Hyper-parameters chosen per split; the whole grid (val accuracy per point) is in results.json "
                  "(`units[].info.grid`).", "", _table_row(["method", "split", "chosen", "fitted on"]),
                  _table_row(["---"] * 4)]
        for m, u in chosen:
            info = u["info"]
            lines.append(_table_row([m, u["split"], _choice_text(info), info.get("mode") or info.get("refit_on", "")]))
    lines += ["", "## Plots", ""]
    names = {f"m{i}": m for i, m in enumerate(agg)}
    for p in plots:
        stem = p[:-4]
        label = stem
        for slug, m in names.items():
            if stem.endswith("_" + slug):
                label = stem[: -len(slug) - 1] + f" ({m})"
        lines.append(f"![{label}]({p})")
    lines.append("")
    return "\n".join(lines)


def write_suite_report(out_dir, rows: list, config: dict, command: str = "") -> list:
    """One table for several tasks in the papers' layout: rows = tasks, columns = our methods then the
    published models (reference only). ``rows``: ``[{task, title, summary: {method: {accuracy: ...}},
    published: {model: (mean, pm)} | None, report_dir}]``."""
    methods = []
    for r in rows:
        for m in r["summary"]:
            if m not in methods:
                methods.append(m)
    stage = StagedOutput(out_dir)
    try:
        header = ["task", *methods, *[f"{m} (published)" for m in PUBLISHED_MODELS]]
        md = ["# genodiff benchmark suite", ""]
        if command:
            md += ["```", command, "```", ""]
        md += ["Top-1 accuracy, mean ± (max-min)/2 over splits. Published columns are for reference only: "
               f"{PUBLISHED_SOURCE}. They use the official train/test split (paper protocol); rows run with "
               "`protocol=cv` are not directly comparable.", "", _table_row(header), _table_row(["---"] * len(header))]
        with open(stage.stage / "suite.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["task", "method", "accuracy_mean", "accuracy_half_range", "accuracy_std", "source"])
            for r in rows:
                cells = [r["title"]]
                for m in methods:
                    s = r["summary"].get(m, {}).get("accuracy")
                    cells.append(fmt_pm(s) if s else "")
                    if s:
                        w.writerow([r["task"], m, _fmt(s["mean"]), _fmt(s["half_range"]), _fmt(s["std"]), "genodiff"])
                pub = r.get("published") or {}
                for m in PUBLISHED_MODELS:
                    v = pub.get(m)
                    cells.append(f"{v[0]:.3f} ± {v[1]:.3f}" if v else "")
                    if v:
                        w.writerow([r["task"], m, v[0], v[1], "", "published"])
                md.append(_table_row(cells))
        md += ["", "Per-task reports: " + ", ".join(f"[{r['task']}]({r['report_dir']}/report.md)" for r in rows), ""]
        (stage.stage / "suite.md").write_text("\n".join(md))
        (stage.stage / "suite.json").write_text(json.dumps(_clean({"rows": rows, "config": config,
                                                                   "environment": environment(),
                                                                   "published_source": PUBLISHED_SOURCE}),
                                                           indent=2, default=_json_default) + "\n")
        return stage.commit()
    except BaseException:
        stage.abort()
        raise
