"""k-mer featurizer against a naive counter, canonical k-mers, the tuned k-mer LR baseline (grid, views,
selection that never sees the test fold), the plain scikit-learn reference pipelines."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from genodiff.benchmarks.datasets import encode_sequences, LabeledSet
from genodiff.benchmarks.kmer import (KmerLogReg, KmerTable, canonical_columns, kmer_count_matrix, kmer_counts,
                                      kmer_features)
from genodiff.benchmarks.plain import SklearnKmerLR, decode
from genodiff.errors import InputError
from genodiff.data.genome.alphabet import STR_COMPLEMENT

from bench_helpers import motif_dataset


def naive(seq: str, k: int) -> np.ndarray:
    index = {"".join(t): i for i, t in enumerate(itertools.product("ACGT", repeat=k))}
    c = Counter(seq[i:i + k] for i in range(len(seq) - k + 1))
    out = np.zeros(4 ** k)
    for kmer, n in c.items():
        if kmer in index:  # windows with N are skipped
            out[index[kmer]] += n
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_kmer_counts_match_naive(k):
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=n))
            for n in (1, 5, 17, 40, 63)]
    ids, lengths, _, _ = encode_sequences(seqs)
    got = kmer_counts(ids, lengths, k)
    for i, s in enumerate(seqs):
        assert np.array_equal(got[i], naive(s, k)), (k, s)


def test_kmer_features_normalized():
    ids, lengths, _, _ = encode_sequences(["ACGTACGT", "AAAA"])
    f = kmer_features(ids, lengths, ks=(2, 3))
    assert f.shape == (2, 16 + 64)
    assert np.allclose(f[:, :16].sum(1), 1) and np.allclose(f[:, 16:].sum(1), 1)


def test_kmer_lr_learns_motif():
    seqs, labels = motif_dataset(200, 40, seed=2)
    ids, lengths, _, _ = encode_sequences(seqs)
    data = LabeledSet(ids, lengths, np.array(labels), ["0", "1"])
    tr, va, te = data.subset(np.arange(0, 120)), data.subset(np.arange(120, 150)), data.subset(np.arange(150, 200))
    m = KmerLogReg(ks=(3, 4), Cs=(0.1, 1.0)).fit(tr, va)
    p = m.predict_proba(te)
    assert p.shape == (50, 2) and np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == te.labels).mean() > 0.85
    # every (k or both, canonical, view, C) point scored on val; freq skipped (all records 40 bp)
    grid = m.info["grid"]
    assert len(grid) == 3 * 2 * 2 * 2
    assert {g[0] for g in grid} == {3, 4, "all"} and {g[2] for g in grid} == {"count", "tfidf"}
    assert set(m.info["choice"]) == {"k", "features", "canonical", "C"}
    assert m.info["val_accuracy"] == pytest.approx(max(g[4] for g in grid), abs=1e-5)
    assert m.info["selection"].startswith("5-fold CV of the training part (150 records")


def _rc(s: str) -> str:
    return s.translate(STR_COMPLEMENT)[::-1]


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_sparse_counts_and_canonical_columns(k):
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=n)) for n in (3, 9, 30, 64)]
    ids, lengths, _, _ = encode_sequences(seqs)
    X = kmer_count_matrix(ids, lengths, k)
    assert np.array_equal(X.toarray(), kmer_counts(ids, lengths, k))
    col, n = canonical_columns(k)
    assert n == (4 ** k + (4 ** (k // 2) if k % 2 == 0 else 0)) // 2
    # a sequence and its reverse complement have the same canonical counts
    both, blen, _, _ = encode_sequences(seqs + [_rc(s) for s in seqs])
    table = KmerTable(both, blen, (k,))
    C = table.matrix(k, True).toarray()
    assert C.shape[1] == n and np.array_equal(C[:len(seqs)], C[len(seqs):])
    assert np.array_equal(C.sum(1), table.matrix(k, False).toarray().sum(1))


def test_freq_view_only_for_variable_lengths():
    m = KmerLogReg(ks=(3,), combine=True)
    assert {v for _, _, v in m.grid(equal_lengths=True)} == {"count", "tfidf"}
    assert {v for _, _, v in m.grid(equal_lengths=False)} == {"count", "freq", "tfidf"}


def _motif_set(n=240, length=60, seed=3):
    seqs, labels = motif_dataset(n, length, seed=seed)
    rng = np.random.default_rng(seed)
    seqs = [s[: int(rng.integers(length - 15, length + 1))] for s in seqs]  # variable lengths: freq view too
    ids, lengths, _, _ = encode_sequences(seqs)
    return LabeledSet(ids, lengths, np.array(labels), ["0", "1"])


def _poisoned(data: LabeledSet, rows: np.ndarray, seed: int = 9) -> LabeledSet:
    """A copy whose ``rows`` get random sequences and flipped labels."""
    rng = np.random.default_rng(seed)
    ids, labels = data.ids.copy(), data.labels.copy()
    for r in rows:
        ids[r, : data.lengths[r]] = rng.integers(7, 11, data.lengths[r])
    labels[rows] = 1 - labels[rows]
    return LabeledSet(ids, data.lengths.copy(), labels, list(data.classes))


@pytest.mark.parametrize("cv_below", [0, 10_000])  # inner val split | 5-fold CV of train + val
def test_kmer_lr_selection_never_sees_the_test_fold(cv_below):
    """Poison the test fold (sequences and labels): the grid, the choice and the fitted model are unchanged."""
    data = _motif_set()
    train, val, test = np.arange(0, 150), np.arange(150, 180), np.arange(180, 240)
    kw = dict(ks=(2, 3), Cs=(1e-3, 10.0), cv_below=cv_below)
    clean = KmerLogReg(**kw).fit_indexed(data, train, val)
    poisoned = KmerLogReg(**kw, n_jobs=2).fit_indexed(_poisoned(data, test), train, val)
    assert clean.info["grid"] == poisoned.info["grid"] and clean.info["choice"] == poisoned.info["choice"]
    assert len(clean.info["grid"]) == 3 * 2 * 3 * 2  # k 2, 3, both x canonical x count/freq/tfidf x C
    assert np.array_equal(clean.model.coef_, poisoned.model.coef_)
    assert np.array_equal(clean.predict_proba_indexed(data, test), poisoned.predict_proba_indexed(data, test))
    # and the test rows do matter when they are part of training (the check has power)
    leaky = KmerLogReg(**kw).fit_indexed(_poisoned(data, test), np.concatenate([train, test]), val)
    assert leaky.info["grid"] != clean.info["grid"]


def test_plain_sklearn_pipeline():
    data = _motif_set(160, 40)
    m = SklearnKmerLR(k=4, C=0.1).fit(data.subset(np.arange(100)), data.subset(np.arange(100, 120)))
    p = m.predict_proba(data.subset(np.arange(120, 160)))
    assert p.shape == (40, 2) and (p.argmax(1) == data.labels[120:]).mean() > 0.8
    seqs = decode(data)
    vec = m.pipe.steps[0][1]
    counts = vec.transform(seqs[:3]).toarray().sum(1)
    assert counts.tolist() == [len(s) - 3 for s in seqs[:3]]


def test_kmer_lr_select_rule_picks_by_the_named_score():
    """``select`` picks the grid point with the lowest val log-loss (the default) or the best val accuracy, from
    one grid."""
    data = _motif_set(seed=4)  # a set where the two rules disagree (checked below)
    train, val = np.arange(0, 150), np.arange(150, 200)
    kw = dict(ks=(2, 3), Cs=(1e-5, 1e-3, 0.1, 10.0), cv_below=0)
    by_acc = KmerLogReg(**kw, select="accuracy").fit_indexed(data, train, val)
    by_ll = KmerLogReg(**kw).fit_indexed(data, train, val)
    assert by_acc.info["grid"] == by_ll.info["grid"]  # same scores, different rule
    grid = by_acc.info["grid"]
    best_acc = min(grid, key=lambda g: (-g[4], g[5]))
    best_ll = min(grid, key=lambda g: (g[5], -g[4]))
    as_choice = lambda g: {"k": g[0], "features": g[2], "canonical": g[1], "C": g[3]}  # noqa: E731
    assert by_acc.choice == as_choice(best_acc) and by_ll.choice == as_choice(best_ll)
    assert round(by_ll.info["val_log_loss"], 5) == best_ll[5] and by_ll.info["selection"].endswith("by val log-loss")
    # the two rules disagree on this grid, so the test tells them apart
    assert by_acc.choice != by_ll.choice
    with pytest.raises(InputError, match="kmer_lr.select"):
        KmerLogReg(select="auc")


def test_kmer_lr_choice_and_fit_from_a_stored_grid_match_a_computed_grid(monkeypatch):
    """What ``perf/reselect_kmer.py`` relies on: a fit whose ``grid_scores`` answers with another run's stored
    (rounded) grid makes the same choice, for either rule, and the same predictions as the fit that computed it."""
    data = _motif_set(seed=4)
    train, val, test = np.arange(0, 150), np.arange(150, 200), np.arange(200, len(data))
    kw = dict(ks=(2, 3), Cs=(1e-5, 1e-3, 0.1, 10.0), cv_below=0)
    computed = {rule: KmerLogReg(**kw, select=rule).fit_indexed(data, train, val) for rule in ("accuracy", "log_loss")}
    stored = {(o, c, v, C): (a, ll) for o, c, v, C, a, ll in computed["accuracy"].info["grid"]}
    monkeypatch.setattr(KmerLogReg, "grid_scores", lambda self, table, y, grid, pairs: dict(stored))
    for rule, full in computed.items():
        reused = KmerLogReg(**kw, select=rule).fit_indexed(data, train, val)
        assert reused.choice == full.choice
        assert np.array_equal(reused.predict_proba_indexed(data, test), full.predict_proba_indexed(data, test))
    assert computed["accuracy"].choice != computed["log_loss"].choice  # the rules differ here: the test has power
