"""k-mer count features and the tuned k-mer logistic-regression baseline.

:func:`kmer_counts` counts overlapping k-mers of ``A C G T`` (ids 7..10) per sequence, vectorized
(rolling base-4 codes + one ``bincount``); windows that touch N, padding or any special token are
skipped. :func:`kmer_count_matrix` is the same as a sparse CSR matrix (one ``np.unique`` over
``row * 4**k + code``), used for k up to 7 and beyond.

:class:`KmerLogReg` (``kmer_lr``) is the baseline a careful bioinformatician would build by hand, with
every choice made inside the training part only -- on the inner validation split, or, when the training part
has fewer than ``cv_below`` records (a 10% split would hold a few dozen), on a 5-fold CV of train + val
(:func:`selection`):

* k in ``ks`` (default 3..7), or all of them concatenated (``combine``; each k block scaled to the mean row
  norm of the largest k's block on the training rows, so the many counts of small k do not dominate);
* features ``count`` (raw counts), ``freq`` (counts / valid windows; skipped when every record has the same
  length, where it equals ``count``) or ``tfidf`` (scikit-learn's ``TfidfTransformer``, IDF from the training
  rows, l2 rows); ``freq`` and ``tfidf`` are multiplied by one constant, computed on the training rows, that
  gives them the mean row norm of the count view, so one C grid serves all three (without it a frequency
  needs a ~W**2 larger C than a count);
* canonical k-mers (a k-mer and its reverse complement collapsed into one column by a column map) or not;
* ``C`` (inverse L2 strength) on a log grid, 1e-5 .. 10 by default, fitted along the path with warm starts.

The grid point chosen is the one with the lowest validation log-loss (``select="log_loss"``, the default; ties
by accuracy) or the highest validation accuracy (``select="accuracy"``, ties by the lower log-loss). Log-loss
is a proper score and much less noisy than the accuracy of a few hundred validation records: choosing among
~250 configurations by accuracy picks noise (measured on GUE splice, docs/results.md).

Counts of every k are computed ONCE per labeled set (:class:`KmerTable`, cached by content) and every
configuration of the grid is a view of them; the configurations are fitted in parallel (joblib threads:
the solver's heavy parts release the GIL; one BLAS thread each, see :meth:`KmerLogReg.fit_indexed`). The
chosen configuration is refitted on train + val and the whole grid (val accuracy and log-loss per point) is
kept in :attr:`KmerLogReg.info`. The test part never reaches the grid: features of a record depend on that
record only, and IDF and scale constants come from the rows being fitted.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from genodiff.benchmarks.duplicates import canonical_keys, duplicate_groups
from genodiff.benchmarks.folds import selection_pairs
from genodiff.data.genome.alphabet import ids_to_base4, kmer_index
from genodiff.data.genome.vocab import PAD_ID
from genodiff.errors import InputError

__all__ = ["selection", "kmer_counts", "kmer_features", "kmer_count_matrix", "canonical_columns", "KmerTable",
           "KmerLogReg", "set_fingerprint", "VIEWS", "DEFAULT_CS", "expand_proba"]

VIEWS = ("count", "freq", "tfidf")
SELECT_BY = ("accuracy", "log_loss")  # what the grid search maximizes / minimizes on the validation part
#: the default C grid: 1e-5 .. 10, one point per decade
DEFAULT_CS = tuple(float(f"1e{e}") for e in range(-5, 2))


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
    """Concatenated k-mer frequency vectors for every k in ``ks`` (dense)."""
    feats = []
    for k in ks:
        c = kmer_counts(ids, lengths, int(k))
        feats.append(c / np.clip(c.sum(1, keepdims=True), 1.0, None))
    return np.concatenate(feats, axis=1)


def kmer_count_matrix(ids: np.ndarray, lengths: np.ndarray, k: int, dtype=np.float32) -> sp.csr_matrix:
    """(N, 4**k) CSR matrix of k-mer counts (the same numbers as :func:`kmer_counts`, sorted indices)."""
    ids = np.asarray(ids)
    N, L = ids.shape
    K = 4 ** k
    lengths = np.asarray(lengths)
    parts = []
    chunk = max(1, (1 << 23) // max(1, L))
    for s in range(0, N, chunk):
        code = ids_to_base4(ids[s:s + chunk])
        n = code.shape[0]
        code[np.arange(L)[None, :] >= lengths[s:s + chunk, None]] = -1
        acc, ok = kmer_index(code, k, dtype=np.int64)
        rows = np.broadcast_to(np.arange(s, s + n, dtype=np.int64)[:, None], acc.shape)[ok]
        parts.append(rows * K + acc[ok])
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    uniq, counts = np.unique(flat, return_counts=True)
    rows = uniq // K
    indptr = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=N), out=indptr[1:])
    return sp.csr_matrix((counts.astype(dtype), (uniq % K).astype(np.int32), indptr), shape=(N, K))


def canonical_columns(k: int) -> tuple[np.ndarray, int]:
    """Column map of canonical k-mers: ``map[code]`` = index of min(code, revcomp(code)) among the
    canonical codes (sorted), and their number (``(4**k + 4**(k//2) * (k % 2 == 0)) / 2``)."""
    codes = np.arange(4 ** k, dtype=np.int64)
    rc = np.zeros_like(codes)
    x = codes.copy()
    for _ in range(k):
        rc = rc * 4 + (3 - x % 4)
        x //= 4
    canon = np.minimum(codes, rc)
    uniq, inverse = np.unique(canon, return_inverse=True)
    return inverse.astype(np.int64), int(uniq.size)


def _collapse_matrix(k: int) -> sp.csr_matrix:
    col, n = canonical_columns(k)
    K = 4 ** k
    return sp.csr_matrix((np.ones(K, np.float32), (np.arange(K), col)), shape=(K, n))


def set_fingerprint(ids: np.ndarray, lengths: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(ids.shape).encode())
    h.update(np.ascontiguousarray(ids).tobytes())
    h.update(np.ascontiguousarray(lengths).tobytes())
    return h.hexdigest()


class KmerTable:
    """Sparse k-mer counts of every record of one labeled set, computed once; :meth:`matrix` returns the
    (cached) count matrix of one k (or ``"all"``: every k concatenated), optionally canonical."""

    _cache: "OrderedDict[tuple, KmerTable]" = OrderedDict()
    MAX_CACHED = 2  # the train and test sets of one task

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, ks):
        self.ks = tuple(int(k) for k in ks)
        self.n = int(ids.shape[0])
        self.lengths = np.asarray(lengths)
        self.counts = {k: kmer_count_matrix(ids, lengths, k) for k in self.ks}
        self._views: dict = {}

    @classmethod
    def of(cls, data, ks) -> "KmerTable":
        """The table of ``data`` (a LabeledSet), from a small content-keyed cache."""
        key = (set_fingerprint(data.ids, data.lengths), tuple(int(k) for k in ks))
        table = cls._cache.get(key)
        if table is None:
            table = cls(data.ids, data.lengths, ks)
            cls._cache[key] = table
            while len(cls._cache) > cls.MAX_CACHED:
                cls._cache.popitem(last=False)
        else:
            cls._cache.move_to_end(key)
        return table

    def matrix(self, option, canonical: bool) -> sp.csr_matrix:
        key = (option, bool(canonical))
        if key not in self._views:
            if option == "all":
                X = sp.hstack([self.matrix(k, canonical) for k in self.ks], format="csr")
            else:
                k = int(option)
                X = self.counts[k]
                if canonical:
                    X = (X @ _collapse_matrix(k)).tocsr()
                    X.sort_indices()
            self._views[key] = X
        return self._views[key]

    def blocks(self, canonical: bool) -> list:
        """Column ranges of the k blocks in the combined (``"all"``) matrix."""
        out, start = [], 0
        for k in self.ks:
            width = self.matrix(k, canonical).shape[1]
            out.append((start, start + width))
            start += width
        return out

    def windows(self, option) -> np.ndarray:
        """Valid k-mer windows per record (the row sums of the count matrix)."""
        return np.asarray(self.matrix(option, False).sum(1)).ravel()


def _row_norm_mean(X) -> float:
    return float(np.sqrt(np.asarray(X.multiply(X).sum(1)).ravel()).mean()) if X.shape[0] else 0.0


class _View:
    """One feature view fitted on the rows it will be trained on (IDF, scale): count | freq | tfidf.

    ``blocks`` (the combined option): column ranges of the k blocks; each block is first multiplied by one
    constant that gives it the mean row norm of the last (largest-k) block, so that the many counts of
    small k neither dominate the model nor the solver's conditioning (3x fewer L-BFGS iterations, measured).
    """

    def __init__(self, view: str, blocks=None):
        self.view = view
        self.blocks = blocks
        self.col_scale = None
        self.tfidf = None
        self.scale = 1.0
        self.dense = False

    def _raw(self, X, windows):
        if self.col_scale is not None:
            X = (X @ sp.diags(self.col_scale.astype(X.dtype))).tocsr()
        if self.view == "count":
            return X
        if self.view == "freq":
            return sp.csr_matrix(X.multiply(1.0 / np.clip(windows, 1, None)[:, None]), dtype=X.dtype)
        return self.tfidf.transform(X)

    def fit_transform(self, X, windows):
        if self.blocks:
            ref = _row_norm_mean(X[:, self.blocks[-1][0]:self.blocks[-1][1]])
            self.col_scale = np.ones(X.shape[1])
            for a, b in self.blocks:
                got = _row_norm_mean(X[:, a:b])
                self.col_scale[a:b] = ref / got if got > 0 else 1.0
            X = (X @ sp.diags(self.col_scale.astype(X.dtype))).tocsr()
        if self.view == "tfidf":
            self.tfidf = TfidfTransformer().fit(X)
        cs, self.col_scale = self.col_scale, None
        V = self._raw(X, windows)
        self.col_scale = cs
        if self.view != "count":
            ref, got = _row_norm_mean(X), _row_norm_mean(V)
            self.scale = ref / got if got > 0 else 1.0
            V = (V * self.scale).astype(X.dtype)
        return V

    def transform(self, X, windows):
        V = self._raw(X, windows)
        return (V * self.scale).astype(X.dtype) if self.view != "count" else V


def expand_proba(proba: np.ndarray, model_classes, n_classes: int) -> np.ndarray:
    """Probabilities over ``model_classes`` -> (N, n_classes) (a class absent from training gets 0)."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[1] == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(model_classes)] = proba
    return full


def selection(data, train_index, val_index, cv_below: int, seed: int) -> tuple:
    """:func:`~genodiff.benchmarks.folds.selection_pairs` for a labeled set, grouped by exact duplicates
    (either strand) of the training part when it is small enough to be cross-validated."""
    rows = np.concatenate([train_index, val_index])
    groups = None
    if len(rows) < cv_below:
        groups = np.zeros(len(data), np.int64)
        groups[rows] = duplicate_groups(canonical_keys(data.subset(rows)))
    return selection_pairs(data.labels, train_index, val_index, cv_below, 5, seed, groups)


def _selection_key(score: tuple, select: str) -> tuple:
    """Sort key of a grid point's ``(val accuracy, val log-loss)``, best first. ``accuracy``: highest accuracy,
    ties by lower log-loss; ``log_loss``: lowest log-loss (a proper score, less noisy than the accuracy of a
    small validation set), ties by higher accuracy. Remaining ties keep grid order (``min`` is stable)."""
    acc, ll = score
    return (-acc, ll) if select == "accuracy" else (ll, -acc)


def _c_path(Xtr, ytr, Xva, yva, Cs, max_iter, seed):
    """Val accuracy and log-loss of L2 logistic regression along ``Cs`` (ascending, warm starts)."""
    out = []
    model = LogisticRegression(C=Cs[0], max_iter=max_iter, tol=1e-4, warm_start=True, random_state=seed)
    labels = np.unique(ytr)
    for C in Cs:  # warnings are silenced by the caller (catch_warnings is not thread-safe)
        model.set_params(C=C)
        model.fit(Xtr, ytr)
        p = model.predict_proba(Xva)
        acc = float((model.classes_[p.argmax(1)] == yva).mean())
        ll = float(log_loss(yva, p, labels=labels)) if np.isin(yva, labels).all() else math.inf
        out.append((acc, ll))
    return out


class KmerLogReg:
    """The tuned k-mer logistic-regression baseline (see the module docstring). ``fit_indexed`` /
    ``predict_proba_indexed`` take a labeled set and row indices (features of the whole set computed once);
    ``fit`` / ``predict_proba`` take subsets (features computed per call)."""

    name = "kmer_lr"

    def __init__(self, ks=(3, 4, 5, 6, 7), Cs=DEFAULT_CS, features=VIEWS, canonical=(False, True),
                 combine: bool = True, max_iter: int = 1000, grid_max_iter: int = 100, refit: bool = True,
                 cv_below: int = 2000, select: str = "log_loss", n_jobs: int = 1, seed: int = 0):
        self.ks = tuple(int(k) for k in ks)
        self.Cs = tuple(sorted(float(c) for c in Cs))
        self.features = tuple(features)
        self.canonical = tuple(bool(c) for c in canonical)
        self.combine = bool(combine) and len(self.ks) > 1
        self.max_iter = int(max_iter)
        self.grid_max_iter = int(grid_max_iter)
        self.refit = bool(refit)
        self.cv_below = int(cv_below)
        if select not in SELECT_BY:
            raise InputError(f"kmer_lr.select must be one of {', '.join(SELECT_BY)}, got {select!r}")
        self.select = select
        self.n_jobs = int(n_jobs)
        self.seed = int(seed)
        bad = set(self.features) - set(VIEWS)
        if bad or not self.features:
            raise InputError(f"kmer_lr.features: unknown {sorted(bad)} (choose from {', '.join(VIEWS)})")
        if not self.ks or min(self.ks) < 1 or max(self.ks) > 10:
            raise InputError(f"kmer_lr.ks must be integers in 1..10, got {list(ks)}")
        if not self.Cs or min(self.Cs) <= 0:
            raise InputError(f"kmer_lr.Cs must be positive, got {list(Cs)}")
        self.info = {}

    # -------------------------------------------------------------------------------------- grid
    def options(self) -> list:
        return list(self.ks) + (["all"] if self.combine else [])

    def grid(self, equal_lengths: bool) -> list:
        """The (option, canonical, view) configurations; ``freq`` is skipped when every record has the same
        length (then it equals ``count`` after rescaling, except on records with N)."""
        out = []
        for option, canonical, view in itertools.product(self.options(), self.canonical, self.features):
            if view == "freq" and equal_lengths and "count" in self.features:
                continue
            out.append((option, canonical, view))
        return out

    def _xy(self, table, option, canonical, view, rows_fit, rows_other, y_fit):
        X = table.matrix(option, canonical)
        w = table.windows(option)
        v = _View(view, table.blocks(canonical) if option == "all" else None)
        Xf = v.fit_transform(X[rows_fit], w[rows_fit])
        Xo = v.transform(X[rows_other], w[rows_other]) if rows_other is not None else None
        if Xf.nnz > 0.3 * Xf.shape[0] * Xf.shape[1]:  # small k: dense is faster (BLAS matvec)
            v.dense = True
            Xf, Xo = Xf.toarray(), (Xo.toarray() if Xo is not None else None)
        return v, Xf, Xo

    def grid_scores(self, table, y, grid, pairs) -> dict:
        """Validation ``(accuracy, log-loss)`` of every grid point ``(option, canonical, view, C)``, pooled over
        the selection ``pairs`` (train rows, val rows); the configurations run in ``n_jobs`` threads."""
        for option, canonical, _ in grid:  # build the shared views before the threads start
            table.matrix(option, canonical)

        def job(cfg):  # val accuracy and log-loss per C, pooled over the selection pairs
            total = np.zeros((len(self.Cs), 2))
            for tr, va in pairs:
                _, Xtr, Xva = self._xy(table, *cfg, tr, va, y[tr])
                total += len(va) * np.asarray(_c_path(Xtr, y[tr], Xva, y[va], self.Cs, self.grid_max_iter,
                                                      self.seed))
            return [tuple(t) for t in total / sum(len(va) for _, va in pairs)]

        # one BLAS thread: L-BFGS makes many small BLAS calls whose threads only spin (setulb 45x slower
        # on the shared 2-core machine, measured); parallelism comes from the grid instead
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            order = sorted(range(len(grid)), key=lambda i: grid[i][0] != "all")  # biggest jobs first
            paths = Parallel(n_jobs=self.n_jobs, backend="threading")(delayed(job)(grid[i]) for i in order)
        paths = [p for _, p in sorted(zip(order, paths))]
        return {(*cfg, C): (acc, ll) for cfg, path in zip(grid, paths) for C, (acc, ll) in zip(self.Cs, path)}

    def fit_indexed(self, data, train_index, val_index):
        train_index, val_index = np.asarray(train_index), np.asarray(val_index)
        table = KmerTable.of(data, self.ks)
        y = np.asarray(data.labels)
        fit_rows = np.concatenate([train_index, val_index]) if self.refit else train_index
        equal = np.unique(np.asarray(data.lengths)[fit_rows]).size == 1
        grid = self.grid(equal)
        pairs, how = selection(data, train_index, val_index, self.cv_below, self.seed)
        scores = {}
        if len(val_index) and (len(grid) > 1 or len(self.Cs) > 1):
            scores = self.grid_scores(table, y, grid, pairs)
            best = min(scores, key=lambda key: _selection_key(scores[key], self.select))
        else:  # nothing to choose on: the first configuration, the middle of the C grid
            best = (*grid[0], self.Cs[len(self.Cs) // 2])
        option, canonical, view, C = best
        self.view, Xfit, _ = self._xy(table, option, canonical, view, fit_rows, None, y[fit_rows])
        self.model = LogisticRegression(C=C, max_iter=self.max_iter, tol=1e-4, random_state=self.seed)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            self.model.fit(Xfit, y[fit_rows])
        self.choice = {"k": option, "features": view, "canonical": bool(canonical), "C": C}
        self.info = {"choice": dict(self.choice),
                     "val_accuracy": scores[best][0] if scores else None,
                     "val_log_loss": scores[best][1] if scores else None,
                     "selection": (f"{how}, by val {self.select.replace('_', '-')}" if scores
                                   else "none (no validation records or a single grid point)"),
                     "refit_on": "train+val" if self.refit else "train",
                     "n_configurations": len(scores),
                     "grid": [[o, bool(c), v, C_, round(a, 5), round(ll, 5)]
                              for (o, c, v, C_), (a, ll) in scores.items()]}
        return self

    def predict_proba_indexed(self, data, index) -> np.ndarray:
        table = KmerTable.of(data, self.ks)
        index = np.asarray(index)
        option, canonical = self.choice["k"], self.choice["canonical"]
        X = self.view.transform(table.matrix(option, canonical)[index], table.windows(option)[index])
        X = X.toarray() if self.view.dense else X
        return expand_proba(self.model.predict_proba(X), self.model.classes_, len(data.classes))

    # ------------------------------------------------------------------ subset API (fit / predict_proba)
    def fit(self, train, val):
        both = _concat(train, val)
        n = len(train)
        return self.fit_indexed(both, np.arange(n), np.arange(n, len(both)))

    def predict_proba(self, data) -> np.ndarray:
        return self.predict_proba_indexed(data, np.arange(len(data)))


def _concat(a, b):
    """Two LabeledSets (same classes) as one (rows of ``a`` then ``b``)."""
    L = max(a.ids.shape[1], b.ids.shape[1])
    ids = np.full((len(a) + len(b), L), PAD_ID, dtype=np.uint8)
    ids[:len(a), :a.ids.shape[1]] = a.ids
    ids[len(a):, :b.ids.shape[1]] = b.ids
    return type(a)(ids, np.concatenate([a.lengths, b.lengths]), np.concatenate([a.labels, b.labels]),
                   list(a.classes), a.source)
