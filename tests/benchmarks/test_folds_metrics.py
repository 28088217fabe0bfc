"""Stratified folds, inner splits, the paper protocol, metrics against scikit-learn, (max-min)/2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from genodiff.benchmarks.folds import cv_splits, inner_split, paper_splits
from genodiff.benchmarks.metrics import classification_metrics, half_range, summarize
from genodiff.errors import InputError


def test_cv_folds_stratified_disjoint_cover():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 13)
    rng = np.random.default_rng(0)
    rng.shuffle(labels)
    splits = cv_splits(labels, folds=5, seed=7, val_fraction=0.1)
    assert len(splits) == 5
    tests = [s.test for s in splits]
    allidx = np.concatenate(tests)
    assert sorted(allidx.tolist()) == list(range(len(labels)))  # union = all, no overlap
    assert len(set(allidx.tolist())) == len(labels)
    overall = np.bincount(labels) / len(labels)
    for s in splits:
        assert not set(s.test) & set(s.train) and not set(s.test) & set(s.val) and not set(s.train) & set(s.val)
        assert len(s.train) + len(s.val) + len(s.test) == len(labels)
        counts = np.bincount(labels[s.test], minlength=3)
        expected = overall * len(s.test)
        assert np.all(np.abs(counts - expected) <= 1.0)  # class proportions kept per fold
        vc = np.bincount(labels[s.val], minlength=3)
        assert np.all(vc >= 1)  # stratified inner split keeps every class
    # same seed -> same folds; other seed -> different
    again = cv_splits(labels, folds=5, seed=7)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(splits, again))
    other = cv_splits(labels, folds=5, seed=8)
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(splits, other))


def test_cv_errors():
    with pytest.raises(InputError, match="fewer than the 5 folds"):
        cv_splits(np.array([0] * 10 + [1] * 3), folds=5)
    with pytest.raises(InputError, match="only one class"):
        cv_splits(np.zeros(20, dtype=int), folds=5)


def test_inner_and_paper_splits():
    labels = np.array([0] * 90 + [1] * 10)
    tr, va = inner_split(np.arange(100), labels, 0.1, 0)
    assert len(va) == 10 and labels[va].sum() == 1 and not set(tr) & set(va)
    splits = paper_splits(labels, n_test=37, seeds=[0, 1, 2])
    for s in splits:
        assert s.train_set == "train" and s.test_set == "test"
        assert s.test.tolist() == list(range(37))
        assert sorted(np.concatenate([s.train, s.val]).tolist()) == list(range(100))
    assert not np.array_equal(splits[0].val, splits[1].val)


def test_metrics_binary_against_sklearn():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    p1 = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2, 0.55, 0.3])
    proba = np.stack([1 - p1, p1], 1)
    m = classification_metrics(y, proba)
    pred = (p1 > 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred)) == pytest.approx(0.75)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p1))
    # hand-computed: TP=3 FN=1 TN=3 FP=1 -> MCC = (9-1)/sqrt(4*4*4*4) = 0.5
    assert m["mcc"] == pytest.approx(0.5)
    assert math.isnan(classification_metrics(np.zeros(3, int), np.full((3, 2), 0.5))["auroc"])


def test_metrics_multiclass_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    proba = rng.dirichlet(np.ones(3), 50)
    m = classification_metrics(y, proba)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_summary_half_range():
    s = summarize([0.80, 0.90, 0.85, 0.86, 0.84])
    assert s["mean"] == pytest.approx(0.85)
    assert s["half_range"] == pytest.approx(0.05)  # (0.90 - 0.80) / 2
    assert s["std"] == pytest.approx(np.std([0.80, 0.90, 0.85, 0.86, 0.84], ddof=1))
    assert half_range([0.2, 0.7]) == pytest.approx(0.25)
    assert summarize([0.5])["std"] == 0.0 and summarize([0.5])["half_range"] == 0.0
    assert summarize([float("nan"), 1.0])["n"] == 1


def test_paired_comparison_against_hand_computation():
    from itertools import product

    from scipy import stats as st

    from genodiff.benchmarks.metrics import paired_comparison

    a = np.array([0.81, 0.79, 0.84, 0.80, 0.83])
    b = np.array([0.78, 0.80, 0.79, 0.76, 0.80])
    r = paired_comparison(a, b)
    d = a - b
    assert r["diff"] == pytest.approx(d.tolist()) and r["n"] == 5
    assert r["diff_mean"] == pytest.approx(d.mean()) and r["diff_half_range"] == pytest.approx(np.ptp(d) / 2)
    assert (r["wins"], r["ties"], r["losses"]) == (4, 0, 1)
    # paired t-test by hand: t = mean / (sd / sqrt(n)), two-sided p from Student's t with n - 1 dof
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert r["t_pvalue"] == pytest.approx(2 * st.t.sf(abs(t), 4), rel=1e-9)
    # exact Wilcoxon by enumerating all 2^5 sign assignments of the ranks of |d|
    ranks = st.rankdata(np.abs(d))
    w_obs = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    null = [sum(rk for rk, s in zip(ranks, signs) if s) for signs in product([0, 1], repeat=5)]
    w_null = [min(w, ranks.sum() - w) for w in null]
    assert r["wilcoxon_pvalue"] == pytest.approx(np.mean([w <= w_obs for w in w_null]))
    # five splits all in favour: the smallest Wilcoxon p there is, 2 / 32
    assert paired_comparison(a + 0.1, a)["wilcoxon_pvalue"] == pytest.approx(0.0625)


def test_paired_comparison_power_and_negative_control():
    from genodiff.benchmarks.metrics import paired_comparison

    rng = np.random.default_rng(0)
    # a real shift of 0.02 with split-to-split noise 0.005 (shared by both methods) over 10 splits: detected
    base = rng.uniform(0.7, 0.9, 10)
    shifted = paired_comparison(base + 0.02 + rng.normal(0, 0.005, 10), base)
    assert shifted["t_pvalue"] < 1e-4 and shifted["wilcoxon_pvalue"] < 0.01
    # no shift: p-values are uniform; over 200 null draws about 5% fall below 0.05 (never most of them)
    ps = [paired_comparison(base + rng.normal(0, 0.01, 10), base + rng.normal(0, 0.01, 10))["t_pvalue"]
          for _ in range(200)]
    assert 0.01 < np.mean(np.array(ps) < 0.05) < 0.12
    # identical results: no test is defined; NaN splits are left out
    same = paired_comparison([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
    assert same["ties"] == 3 and math.isnan(same["t_pvalue"]) and math.isnan(same["wilcoxon_pvalue"])
    gap = paired_comparison([0.8, math.nan, 0.9, 0.7], [0.7, 0.6, 0.8, 0.65])
    assert gap["n"] == 3 and gap["wins"] == 3
    with pytest.raises(ValueError):
        paired_comparison([0.1, 0.2], [0.1])
