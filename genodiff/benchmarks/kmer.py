"""k-mer count features and the k-mer logistic-regression baseline.

:func:`kmer_counts` counts overlapping k-mers of ``A C G T`` (ids 7..10) per sequence, vectorized
(rolling base-4 codes + one ``bincount``); windows that touch N, padding or any special token are
skipped. Features are normalized to frequencies (counts / valid windows) by the baseline.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from genodiff.data.genome.alphabet import ids_to_base4, kmer_index

__all__ = ["kmer_counts", "kmer_features", "KmerLogReg"]


def kmer_counts(ids: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """(N, L) ids + (N,) lengths -> (N, 4**k) float32 counts; column = base-4 code (A=0 C=1 G=2 T=3, first
    base most significant)."""
    ids = np.asarray(ids)
    N, L = ids.shape
    K = 4 ** k
    out = np.zeros((N, K), dtype=np.float32)
    if L < k:
        return out
    lengths = np.asarray(lengths)
    W = L - k + 1
    chunk = max(1, min(N, (1 << 22) // K))  # rows per bincount call (bounded memory)
    for s in range(0, N, chunk):
        code = ids_to_base4(ids[s:s + chunk])
        n = code.shape[0]
        code[np.arange(L)[None, :] >= lengths[s:s + chunk, None]] = -1  # padding
        acc, ok = kmer_index(code, k, dtype=np.int32)
        rows = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], (n, W))[ok]
        flat = rows * K + acc[ok]
        out[s:s + n] = np.bincount(flat, minlength=n * K).reshape(n, K)
    return out


def kmer_features(ids, lengths, ks=(3, 4, 5, 6)) -> np.ndarray:
    """Concatenated k-mer frequency vectors for every k in ``ks``."""
    feats = []
    for k in ks:
        c = kmer_counts(ids, lengths, int(k))
        feats.append(c / np.clip(c.sum(1, keepdims=True), 1.0, None))
    return np.concatenate(feats, axis=1)


class KmerLogReg:
    """k-mer (k = 3..6 by default) frequency features -> standardized -> L2 logistic regression.

    ``C`` is chosen on the inner validation split only (``Cs``: candidates; the test split never enters
    :meth:`fit`).
    """

    name = "kmer_lr"

    def __init__(self, ks=(3, 4, 5, 6), Cs=(0.01, 0.1, 1.0), max_iter: int = 300, seed: int = 0):
        self.ks = tuple(int(k) for k in ks)
        self.Cs = tuple(float(c) for c in Cs)
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.info = {}

    def _pipe(self, C):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=self.max_iter,
                                                                   random_state=self.seed))

    def fit(self, train, val):
        Xtr = kmer_features(train.ids, train.lengths, self.ks)
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(self.Cs) > 1 and len(val):
                Xva = kmer_features(val.ids, val.lengths, self.ks)
                scores = {}
                for C in self.Cs:
                    model = self._pipe(C).fit(Xtr, train.labels)
                    scores[C] = float((model.predict(Xva) == val.labels).mean())
                    if best is None or scores[C] > scores[best[0]]:
                        best = (C, model)
                self.info = {"val_accuracy_by_C": {str(k): v for k, v in scores.items()}, "C": best[0]}
            else:
                best = (self.Cs[0], self._pipe(self.Cs[0]).fit(Xtr, train.labels))
                self.info = {"C": best[0]}
        self.model = best[1]
        return self

    def predict_proba(self, data) -> np.ndarray:
        X = kmer_features(data.ids, data.lengths, self.ks)
        proba = self.model.predict_proba(X)
        C = len(data.classes)
        if proba.shape[1] != C:  # a class absent from training: expand
            full = np.zeros((len(X), C))
            full[:, self.model.classes_] = proba
            proba = full
        return proba
