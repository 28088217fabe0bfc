"""k-mer featurizer against a naive counter; the k-mer LR baseline learns a planted motif."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from genodiff.benchmarks.datasets import encode_sequences, LabeledSet
from genodiff.benchmarks.kmer import KmerLogReg, kmer_counts, kmer_features

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
    assert set(m.info["val_accuracy_by_C"]) == {"0.1", "1.0"}
