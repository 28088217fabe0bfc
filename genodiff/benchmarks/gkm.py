"""Gapped k-mer SVM (``gkm_svm``): a string-kernel baseline in the spirit of gkm-SVM (Ghandi et al. 2014).

The gapped k-mer kernel compares every l-mer ``u`` of one sequence with every l-mer ``v`` of the other and
counts the gapped k-mers they share -- choices of ``k`` of the ``l`` positions at which ``u`` and ``v``
agree::

    K(x, y) = sum_{u in lmers(x)} sum_{v in lmers(y)} binom(l - mismatches(u, v), k)

It is an inner product of explicit count vectors: ``phi(x)[mask, bases]`` counts the l-mers of ``x`` whose
bases at the ``k`` positions ``mask`` (one of ``binom(l, k)`` position subsets) spell ``bases``. The kernel is
computed here exactly as ``sum over masks of Phi_mask Phi_mask^T`` -- one dense ``(N, 4**k)`` count matrix per
mask (a ``bincount``) and one BLAS product, so memory stays at the Gram matrix plus one mask's counts -- and
normalized as in gkm-SVM, ``K(x, y) / sqrt(K(x, x) K(y, y))``. ``kernel="rbf"`` is gkm-SVM's RBF variant
(Lee 2016): ``exp(-gamma * (2 - 2 K_norm))``. Only A/C/G/T count at the ``k`` informative positions; an
l-mer lies wholly inside the sequence.

:class:`GkmSVM`: scikit-learn ``SVC(kernel="precomputed")`` when the fold's training part has at most
``exact_max`` records (the Gram matrix of the whole set is computed ONCE per task and sliced per fold),
above that Nystroem features (``n_components`` landmark rows of the training part) and a linear SVM.
The kernel (linear or rbf) and ``C`` are chosen on the inner validation split (a 5-fold CV of train + val below
``cv_below`` records, as for ``kmer_lr``), then the model is refitted on train + val. Probabilities are the
sigmoid (binary) / softmax (multi-class) of the SVM decision values: uncalibrated, ranked like them, and their
argmax is the SVM's prediction.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import OrderedDict

import numpy as np
from joblib import Parallel, delayed
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from genodiff.benchmarks.kmer import expand_proba, selection, set_fingerprint
from genodiff.data.genome.alphabet import ids_to_base4
from genodiff.errors import InputError

__all__ = ["gkm_masks", "gkm_mask_counts", "gkm_gram", "gkm_kernel_naive", "GkmSVM", "KERNELS"]

KERNELS = ("linear", "rbf")


def gkm_masks(l: int, k: int) -> list:
    """The ``binom(l, k)`` position subsets (sorted tuples) of an l-mer."""
    return list(itertools.combinations(range(int(l)), int(k)))


def _codes(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    codes = ids_to_base4(ids)
    codes[np.arange(codes.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = -1
    return codes


def gkm_mask_counts(codes: np.ndarray, lengths: np.ndarray, l: int, mask) -> np.ndarray:
    """(N, 4**k) float32 counts of the gapped k-mers ``mask`` over the l-mers of every row of ``codes``
    (2-bit codes, -1 = not A/C/G/T)."""
    N, L = codes.shape
    k = len(mask)
    K = 4 ** k
    W = L - l + 1
    if W <= 0:
        return np.zeros((N, K), np.float32)
    acc = np.zeros((N, W), np.int64)
    ok = np.arange(W)[None, :] + l <= np.asarray(lengths)[:, None]  # the l-mer lies inside the sequence
    for j in mask:
        w = codes[:, j:j + W]
        ok &= w >= 0
        acc = acc * 4 + np.where(w >= 0, w, 0)
    rows = np.broadcast_to(np.arange(N, dtype=np.int64)[:, None], (N, W))[ok]
    return np.bincount(rows * K + acc[ok], minlength=N * K).reshape(N, K).astype(np.float32)


def gkm_gram(ids_a, len_a, ids_b=None, len_b=None, l: int = 7, k: int = 4, normalize: bool = True):
    """Gapped k-mer kernel between the rows of ``a`` and ``b`` (``b`` None: ``a`` with itself), float32.

    ``normalize``: divide by ``sqrt(K(x, x) K(y, y))`` (rows without any l-mer get 0)."""
    same = ids_b is None
    ca = _codes(ids_a, len_a)
    cb = ca if same else _codes(ids_b, len_b)
    G = np.zeros((ca.shape[0], cb.shape[0]), np.float32)
    da = np.zeros(ca.shape[0], np.float64)
    db = da if same else np.zeros(cb.shape[0], np.float64)
    for mask in gkm_masks(l, k):
        xa = gkm_mask_counts(ca, len_a, l, mask)
        xb = xa if same else gkm_mask_counts(cb, len_b, l, mask)
        G += xa @ xb.T
        da += np.einsum("ij,ij->i", xa, xa, dtype=np.float64)
        if not same:
            db += np.einsum("ij,ij->i", xb, xb, dtype=np.float64)
    if normalize:
        na, nb = np.sqrt(da), np.sqrt(db)
        na[na == 0] = np.inf
        nb[nb == 0] = np.inf
        G /= na[:, None].astype(np.float32)
        G /= nb[None, :].astype(np.float32)
    return G


def gkm_kernel_naive(x: str, y: str, l: int, k: int) -> int:
    """The definition, for tests: sum over l-mer pairs of binom(l - mismatches, k) (A/C/G/T strings)."""
    total = 0
    for i in range(len(x) - l + 1):
        u = x[i:i + l]
        for j in range(len(y) - l + 1):
            v = y[j:j + l]
            m = sum(a != b for a, b in zip(u, v))
            total += math.comb(l - m, k)
    return total


class _GramCache:
    _cache: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
    MAX_CACHED = 1

    @classmethod
    def of(cls, data, l, k, n_jobs):
        key = (set_fingerprint(data.ids, data.lengths), l, k)
        G = cls._cache.get(key)
        if G is None:
            with threadpool_limits(max(1, n_jobs)):
                G = gkm_gram(data.ids, data.lengths, l=l, k=k)
            cls._cache.clear()  # one Gram matrix at a time (N^2 floats)
            cls._cache[key] = G
        return G


def _rbf(K: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * (2.0 - 2.0 * K))


def _proba(dec: np.ndarray, classes, n_classes: int) -> np.ndarray:
    dec = np.asarray(dec, dtype=np.float64)
    if dec.ndim == 1:
        p1 = 1.0 / (1.0 + np.exp(-dec))
        proba = np.stack([1 - p1, p1], 1)
    else:
        z = dec - dec.max(1, keepdims=True)
        proba = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return expand_proba(proba, classes, n_classes)


class GkmSVM:
    """Gapped k-mer kernel SVM (see the module docstring). ``fit_indexed`` / ``predict_proba_indexed`` work
    on one labeled set and row indices (the Gram matrix is computed once per set)."""

    name = "gkm_svm"

    def __init__(self, l: int = 7, k: int = 4, Cs=(0.1, 1.0, 10.0, 100.0), kernels=KERNELS, gamma: float = 1.0,
                 exact_max: int = 8000, n_components: int = 3000, gram_max: int = 12000, cv_below: int = 2000,
                 n_jobs: int = 1, seed: int = 0):
        self.l, self.k = int(l), int(k)
        if not 1 <= self.k <= self.l or self.k > 8:
            raise InputError(f"gkm_svm: need 1 <= k <= l and k <= 8, got l={l}, k={k}")
        self.Cs = tuple(sorted(float(c) for c in Cs))
        self.kernels = tuple(kernels)
        if set(self.kernels) - set(KERNELS) or not self.kernels:
            raise InputError(f"gkm_svm.kernels: choose from {', '.join(KERNELS)}, got {list(kernels)}")
        self.gamma = float(gamma)
        self.exact_max = int(exact_max)
        self.n_components = int(n_components)
        self.gram_max = int(gram_max)
        self.cv_below = int(cv_below)
        self.n_jobs = int(n_jobs)
        self.seed = int(seed)
        self.info = {}

    # ------------------------------------------------------------------------------------ kernels
    def _kernel(self, data, rows, cols, cols_data=None) -> np.ndarray:
        """Normalized linear gkm kernel between ``data[rows]`` and ``(cols_data or data)[cols]``."""
        other = data if cols_data is None else cols_data
        if other is data and len(data) <= self.gram_max:
            return _GramCache.of(data, self.l, self.k, self.n_jobs)[np.ix_(rows, cols)]
        with threadpool_limits(max(1, self.n_jobs)):
            return gkm_gram(data.ids[rows], data.lengths[rows], other.ids[cols], other.lengths[cols], self.l, self.k)

    def _transform(self, K, kernel):
        return _rbf(K, self.gamma) if kernel == "rbf" else K

    def _fit_one(self, K_tr, y, kernel, C):
        if self.mode == "exact":
            m = SVC(kernel="precomputed", C=C, random_state=self.seed)
            m.fit(self._transform(K_tr, kernel).astype(np.float64), y)
        else:
            m = LinearSVC(C=C, random_state=self.seed, max_iter=5000)
            m.fit(self._nystroem(K_tr, kernel), y)
        return m

    def _nystroem(self, K_nm, kernel):
        """Nystroem features ``K_nm K_mm^(-1/2)`` (``K_nm``: rows x landmarks, not yet transformed)."""
        return self._transform(K_nm, kernel) @ self._whiten[kernel]

    # ------------------------------------------------------------------------------------ fit
    def fit_indexed(self, data, train_index, val_index):
        train_index, val_index = np.asarray(train_index), np.asarray(val_index)
        y = np.asarray(data.labels)
        fit_rows = np.concatenate([train_index, val_index])
        self.mode = "exact" if len(fit_rows) <= self.exact_max else "nystroem"
        self.fit_data = data
        if self.mode == "nystroem":
            rng = np.random.default_rng(self.seed)
            m = min(self.n_components, len(train_index))
            self.landmarks = np.sort(rng.choice(train_index, size=m, replace=False))
            K_mm = self._kernel(data, self.landmarks, self.landmarks).astype(np.float64)
            self._whiten = {}
            for kern in self.kernels:
                w, V = np.linalg.eigh(self._transform(K_mm, kern))
                w = np.maximum(w, 1e-10)
                self._whiten[kern] = ((V / np.sqrt(w)) @ V.T).astype(np.float32)
            cols = self.landmarks
        else:
            cols = None
        scores = {}
        grid = [(kern, C) for kern in self.kernels for C in self.Cs]
        pairs, how = selection(data, train_index, val_index, self.cv_below, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(val_index) and len(grid) > 1:
                kernels = [(self._kernel(data, tr, tr if cols is None else cols),
                            self._kernel(data, va, tr if cols is None else cols)) for tr, va in pairs]

                def job(kern, C):  # pooled val accuracy over the selection pairs
                    correct = 0
                    for (tr, va), (K_tr, K_va) in zip(pairs, kernels):
                        model = self._fit_one(K_tr, y[tr], kern, C)
                        Xva = (self._transform(K_va, kern).astype(np.float64) if self.mode == "exact"
                               else self._nystroem(K_va, kern))
                        correct += int((model.predict(Xva) == y[va]).sum())
                    return correct / sum(len(va) for _, va in pairs)

                with threadpool_limits(1):
                    accs = Parallel(n_jobs=self.n_jobs, backend="threading")(delayed(job)(*g) for g in grid)
                scores = dict(zip(grid, accs))
                best = max(grid, key=lambda g: scores[g])  # first in grid order among ties
                del kernels
            else:  # nothing to choose on: the first kernel, the middle of the C grid
                best = (self.kernels[0], self.Cs[len(self.Cs) // 2])
            self.kernel, self.C = best
            self.fit_rows = fit_rows
            K_fit = self._kernel(data, fit_rows, fit_rows if cols is None else cols)
            self.model = self._fit_one(K_fit, y[fit_rows], self.kernel, self.C)
        self.info = {"choice": {"kernel": self.kernel, "C": self.C, "l": self.l, "k": self.k,
                                "gamma": self.gamma if self.kernel == "rbf" else None},
                     "mode": (f"SVC(kernel=precomputed) on {len(fit_rows)} records" if self.mode == "exact" else
                              f"Nystroem ({len(cols)} landmarks) + LinearSVC on {len(fit_rows)} records"),
                     "val_accuracy": scores.get(best), "refit_on": "train+val",
                     "selection": how if scores else "none (no validation records or a single grid point)",
                     "grid": [[kern, C, round(a, 5)] for (kern, C), a in scores.items()]}
        return self

    def predict_proba_indexed(self, data, index) -> np.ndarray:
        index = np.asarray(index)
        cols = self.fit_rows if self.mode == "exact" else self.landmarks
        if data is self.fit_data:
            K = self._kernel(data, index, cols)
        else:
            with threadpool_limits(max(1, self.n_jobs)):
                K = gkm_gram(data.ids[index], data.lengths[index], self.fit_data.ids[cols],
                             self.fit_data.lengths[cols], self.l, self.k)
        X = (self._transform(K, self.kernel).astype(np.float64) if self.mode == "exact"
             else self._nystroem(K, self.kernel))
        return _proba(self.model.decision_function(X), self.model.classes_, len(data.classes))
