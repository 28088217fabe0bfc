"""Gapped k-mer kernel against its definition; the gkm-SVM baseline (exact and Nystroem), selection that never
sees the test fold, prediction on another set (paper protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from genodiff.benchmarks.datasets import LabeledSet, encode_sequences
from genodiff.benchmarks.gkm import GkmSVM, gkm_gram, gkm_kernel_naive

from bench_helpers import motif_dataset


@pytest.mark.parametrize("l, k", [(3, 2), (5, 3), (6, 4)])
def test_gram_equals_definition(l, k):
    rng = np.random.default_rng(l * 10 + k)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (2, l, 9, 17, 23)]
    ids, lengths, _, _ = encode_sequences(seqs)
    G = gkm_gram(ids, lengths, l=l, k=k, normalize=False)
    want = np.array([[gkm_kernel_naive(a, b, l, k) for b in seqs] for a in seqs])
    assert np.array_equal(G, want)
    # cross kernel (a != b) and the normalization
    H = gkm_gram(ids[:3], lengths[:3], ids[2:], lengths[2:], l=l, k=k, normalize=False)
    assert np.array_equal(H, want[:3, 2:])
    N = gkm_gram(ids, lengths, l=l, k=k)
    assert np.allclose(np.diag(N)[1:], 1.0) and N[0, 0] == 0  # a 2-bp sequence has no l-mer


def _set(n=200, length=50, seed=5):
    seqs, labels = motif_dataset(n, length, seed=seed)
    ids, lengths, _, _ = encode_sequences(seqs)
    return LabeledSet(ids, lengths, np.array(labels), ["0", "1"])


@pytest.mark.parametrize("exact_max", [10_000, 50])
def test_gkm_svm_learns_motif(exact_max):
    data = _set()
    m = GkmSVM(l=6, k=3, Cs=(0.1, 10.0), exact_max=exact_max, n_components=80, n_jobs=2)
    m.fit_indexed(data, np.arange(120), np.arange(120, 150))
    p = m.predict_proba_indexed(data, np.arange(150, 200))
    assert p.shape == (50, 2) and np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == data.labels[150:]).mean() > 0.85
    assert len(m.info["grid"]) == 4 and m.info["choice"]["kernel"] in ("linear", "rbf")
    assert m.info["mode"].startswith("SVC" if exact_max > 150 else "Nystroem")
    assert m.info["selection"].startswith("5-fold CV of the training part (150 records")
    # the same rows as a separate set (paper protocol: test split != train split) give the same probabilities
    other = data.subset(np.arange(150, 200))
    assert np.allclose(m.predict_proba_indexed(other, np.arange(50)), p, atol=1e-5)


def test_gkm_svm_selection_never_sees_the_test_fold():
    data = _set()
    test = np.arange(150, 200)
    rng = np.random.default_rng(1)
    ids, labels = data.ids.copy(), data.labels.copy()
    ids[test] = rng.integers(7, 11, ids[test].shape)
    labels[test] = 1 - labels[test]
    poisoned = LabeledSet(ids, data.lengths, labels, data.classes)
    kw = dict(l=6, k=3, Cs=(0.1, 1.0, 10.0))
    a = GkmSVM(**kw).fit_indexed(data, np.arange(120), np.arange(120, 150))
    b = GkmSVM(**kw).fit_indexed(poisoned, np.arange(120), np.arange(120, 150))
    assert a.info["grid"] == b.info["grid"] and a.info["choice"] == b.info["choice"]
    assert np.array_equal(a.model.dual_coef_, b.model.dual_coef_)
    assert np.array_equal(a.model.support_, b.model.support_)
