"""Plain scikit-learn reference pipelines (``sk_kmer``): what a bioinformatician writes in five minutes.

``CountVectorizer(analyzer="char", ngram_range=(k, k), lowercase=False)`` on the sequence strings (so the
k-mer counting is scikit-learn's, independent of genodiff's) + ``LogisticRegression(C)``, no scaling, no
tuning: one fixed ``(k, C)`` per method, fitted on the fold's whole training part (train + val). They run
in the same harness on the same folds as the tuned baselines, which must not lose to the best of them.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from genodiff.benchmarks.kmer import expand_proba
from genodiff.data.genome.alphabet import ID_TO_BYTE

__all__ = ["SklearnKmerLR", "decode"]


def decode(data) -> list:
    """The sequences of a LabeledSet as upper-case strings (N for N; padding dropped)."""
    text = ID_TO_BYTE[data.ids]
    return [text[i, :n].tobytes().decode("ascii") for i, n in enumerate(np.asarray(data.lengths))]


class SklearnKmerLR:
    """``make_pipeline(CountVectorizer(char k-grams), LogisticRegression(C=C, max_iter=max_iter))``."""

    name = "sk_kmer"

    def __init__(self, k: int = 4, C: float = 1e-3, max_iter: int = 1000, seed: int = 0):
        self.k, self.C, self.max_iter, self.seed = int(k), float(C), int(max_iter), int(seed)
        self.info = {"k": self.k, "C": self.C, "fit_on": "train+val"}

    def fit(self, train, val):
        seqs = decode(train) + decode(val)
        y = np.concatenate([train.labels, val.labels])
        self.pipe = make_pipeline(CountVectorizer(analyzer="char", ngram_range=(self.k, self.k), lowercase=False),
                                  LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed))
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            self.pipe.fit(seqs, y)
        return self

    def predict_proba(self, data) -> np.ndarray:
        proba = self.pipe.predict_proba(decode(data))
        return expand_proba(proba, self.pipe.classes_, len(data.classes))
