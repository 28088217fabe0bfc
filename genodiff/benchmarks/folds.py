"""Data splits: stratified k-fold cross-validation, inner validation splits and the paper protocol.

All splits are index arrays into one tokenized :class:`~genodiff.benchmarks.datasets.LabeledSet`; the data
are never re-read per fold. Seeds are explicit so every split can be recreated from the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from genodiff.errors import InputError

__all__ = ["Split", "cv_splits", "inner_split", "paper_splits"]


@dataclass
class Split:
    """One evaluation unit: fit on ``train`` (model selection on ``val`` only), score on ``test``.

    ``name`` is ``fold<k>`` (cross-validation) or ``seed<s>`` (paper protocol); indices refer to the
    set named by ``train_set`` / ``test_set``.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    train_set: str = "all"
    test_set: str = "all"


def _check_counts(labels: np.ndarray, k: int, what: str) -> None:
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if counts.size < 2:
        raise InputError(f"{what}: only one class present")
    if counts.min() < k:
        raise InputError(f"{what}: the smallest class has {int(counts.min())} records, fewer than the "
                         f"{k} folds/splits needed (lower cv.folds or add data)")


def inner_split(index: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int):
    """Stratified random split of ``index`` into (train, val); ``val_fraction`` of it goes to val."""
    index = np.asarray(index)
    if val_fraction <= 0:
        return index, index[:0]
    y = labels[index]
    try:
        tr, va = train_test_split(index, test_size=val_fraction, random_state=seed, shuffle=True, stratify=y)
    except ValueError:  # a class too small to stratify: plain shuffled split
        tr, va = train_test_split(index, test_size=val_fraction, random_state=seed, shuffle=True)
    return np.sort(tr), np.sort(va)


def cv_splits(labels: np.ndarray, folds: int = 5, seed: int = 0, val_fraction: float = 0.1):
    """Stratified, shuffled k-fold CV (scikit-learn ``StratifiedKFold(shuffle=True, random_state=seed)``).

    Each fold's training part is split again (stratified, ``seed + fold``) into an inner train/val pair
    for early stopping; the held-out fold is never used for model selection.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise InputError(f"cv.folds must be >= 2, got {folds}")
    _check_counts(labels, folds, "cross-validation")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = []
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        itr, iva = inner_split(tr, labels, val_fraction, seed + 1000 + k)
        out.append(Split(f"fold{k}", itr, iva, np.sort(te), seed))
    return out


def paper_splits(train_labels: np.ndarray, n_test: int, seeds=(0, 1, 2, 3, 4), val_fraction: float = 0.1):
    """The Caduceus/HyenaDNA Genomic Benchmarks protocol: per seed a random (stratified) 90/10 train/val
    split of the official TRAIN split; the official TEST split is scored once per seed."""
    train_labels = np.asarray(train_labels)
    _check_counts(train_labels, 2, "paper protocol train split")
    all_idx = np.arange(len(train_labels))
    out = []
    for s in seeds:
        tr, va = inner_split(all_idx, train_labels, val_fraction, int(s))
        out.append(Split(f"seed{s}", tr, va, np.arange(n_test), int(s), train_set="train", test_set="test"))
    return out
