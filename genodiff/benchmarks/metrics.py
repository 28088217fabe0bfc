"""Classification metrics and the across-fold summaries the papers report.

* :func:`classification_metrics`: accuracy, macro-F1, MCC, AUROC (binary: positive class = id 1;
  multi-class: one-vs-rest macro AUROC when every class is present) from labels and class probabilities.
* :func:`summarize`: mean, sample standard deviation (ddof=1) and ``(max - min) / 2`` -- the "±" of the
  Caduceus / HyenaDNA Genomic Benchmarks tables.
* :func:`paired_comparison`: the per-split differences of two methods evaluated on the same splits, with a
  paired t-test and an exact Wilcoxon signed-rank test.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

__all__ = ["classification_metrics", "summarize", "METRICS", "half_range", "paired_comparison"]

METRICS = ("accuracy", "f1_macro", "mcc", "auroc")


def classification_metrics(y_true: Sequence[int], proba: np.ndarray, n_classes: int | None = None) -> dict:
    """Metrics of class probabilities ``proba`` (N, C) against integer labels ``y_true`` (N,).

    The prediction is ``argmax(proba)`` (ties -> the lower class id). ``auroc`` is NaN when it is undefined
    (one class only in ``y_true``).
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    C = n_classes or p.shape[1]
    pred = p.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"accuracy": float(accuracy_score(y, pred)),
               "f1_macro": float(f1_score(y, pred, average="macro", labels=list(range(C)), zero_division=0)),
               "mcc": float(matthews_corrcoef(y, pred))}
    present = np.unique(y)
    if C == 2:
        out["auroc"] = float(roc_auc_score(y, p[:, 1])) if present.size == 2 else math.nan
    elif present.size == C:
        q = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
        out["auroc"] = float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=list(range(C))))
    else:
        out["auroc"] = math.nan
    return out


def half_range(values: Iterable[float]) -> float:
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=np.float64)
    return float((v.max() - v.min()) / 2) if v.size else math.nan


def summarize(values: Iterable[float]) -> dict:
    """``{mean, std (ddof=1; 0 for one value), half_range ((max-min)/2), min, max, n}`` ignoring NaNs."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "half_range": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "half_range": float((v.max() - v.min()) / 2), "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict:
    """Compare method A with method B evaluated on the same splits (``a[i]``, ``b[i]``: split i).

    Returns the differences ``a - b`` per split, their :func:`summarize` (mean, std, half-range), the number of
    splits where A wins / ties / loses, the two-sided paired t-test p-value (``scipy.stats.ttest_rel``; NaN when
    every difference is equal, where the test is undefined) and the two-sided exact Wilcoxon signed-rank p-value
    (zero differences dropped; NaN when all are zero). With 5 splits the smallest attainable Wilcoxon p is
    2 / 2**5 = 0.0625: five folds alone can never reach p < 0.05 by that test. Splits where either value is NaN
    are left out; with fewer than 2 splits left every statistic is NaN.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_comparison: need two equal-length sequences, got shapes {x.shape}, {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)  # a split where either metric is undefined (NaN) is left out
    x, y = x[keep], y[keep]
    diff = x - y
    if diff.size < 2:
        return {"diff": [float(d) for d in diff], "diff_mean": math.nan, "diff_std": math.nan,
                "diff_half_range": math.nan, "diff_min": math.nan, "diff_max": math.nan, "n": int(diff.size),
                "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum()),
                "t_pvalue": math.nan, "wilcoxon_pvalue": math.nan}
    out = {"diff": [float(d) for d in diff], **{f"diff_{k}": v for k, v in summarize(diff).items() if k != "n"},
           "n": int(diff.size), "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
           "losses": int((diff < 0).sum())}
    if np.ptp(diff) == 0:
        out["t_pvalue"] = math.nan
    else:
        out["t_pvalue"] = float(stats.ttest_rel(x, y).pvalue)
    nonzero = diff[diff != 0]
    out["wilcoxon_pvalue"] = (float(stats.wilcoxon(nonzero, method="exact").pvalue) if nonzero.size else math.nan)
    return out
