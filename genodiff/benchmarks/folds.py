"""Data splits: stratified k-fold cross-validation, inner validation splits and the paper protocol.

All splits are index arrays into one tokenized :class:`~genodiff.benchmarks.datasets.LabeledSet`; the data
are never re-read per fold. Seeds are explicit so every split can be recreated from the report.

``groups`` (one id per record; :mod:`~genodiff.benchmarks.duplicates` gives identical sequences on either
strand one id): when some group has more than one record, folds come from ``StratifiedGroupKFold`` and the
inner train/val splits are grouped too, so no group is ever on both sides of a split. Without duplicate
groups the splits are exactly the ungrouped ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedKFold, train_test_split

from genodiff.errors import InputError

__all__ = ["Split", "cv_splits", "inner_split", "paper_splits", "has_duplicates", "selection_pairs"]


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


def has_duplicates(groups, index=None) -> bool:
    """True when some group id occurs more than once (among ``index``)."""
    if groups is None:
        return False
    g = np.asarray(groups) if index is None else np.asarray(groups)[index]
    return np.unique(g).size < g.size


def _grouped_inner(index, labels, val_fraction, seed, groups):
    y, g = labels[index], np.asarray(groups)[index]
    n = max(2, int(round(1.0 / val_fraction)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, va = next(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(index, y, g))
    except ValueError:  # fewer groups than splits: an unstratified grouped split
        _, va = next(GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed).split(index, y, g))
    mask = np.zeros(len(index), bool)
    mask[va] = True
    return np.sort(index[~mask]), np.sort(index[mask])


def inner_split(index: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int, groups=None):
    """Stratified random split of ``index`` into (train, val); ``val_fraction`` of it goes to val. With
    duplicate ``groups`` among ``index``: a stratified grouped split (val = one of round(1/val_fraction)
    ``StratifiedGroupKFold`` folds)."""
    index = np.asarray(index)
    if val_fraction <= 0:
        return index, index[:0]
    if has_duplicates(groups, index):
        return _grouped_inner(index, labels, val_fraction, seed, groups)
    y = labels[index]
    try:
        tr, va = train_test_split(index, test_size=val_fraction, random_state=seed, shuffle=True, stratify=y)
    except ValueError:  # a class too small to stratify: plain shuffled split
        tr, va = train_test_split(index, test_size=val_fraction, random_state=seed, shuffle=True)
    return np.sort(tr), np.sort(va)


def cv_splits(labels: np.ndarray, folds: int = 5, seed: int = 0, val_fraction: float = 0.1, groups=None):
    """Stratified, shuffled k-fold CV (scikit-learn ``StratifiedKFold(shuffle=True, random_state=seed)``;
    ``StratifiedGroupKFold`` with the same arguments when ``groups`` has duplicates).

    Each fold's training part is split again (stratified, ``seed + 1000 + fold``; grouped likewise) into an
    inner train/val pair for model selection; the held-out fold is never used for model selection.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise InputError(f"cv.folds must be >= 2, got {folds}")
    _check_counts(labels, folds, "cross-validation")
    if has_duplicates(groups):
        groups = np.asarray(groups)
        if np.unique(groups).size < folds:
            raise InputError(f"cross-validation: {np.unique(groups).size} distinct sequences, fewer than the "
                             f"{folds} folds")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
            parts = list(splitter.split(np.zeros(len(labels)), labels, groups))
    else:
        groups = None
        parts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    out = []
    for k, (tr, te) in enumerate(parts):
        itr, iva = inner_split(tr, labels, val_fraction, seed + 1000 + k, groups)
        out.append(Split(f"fold{k}", itr, iva, np.sort(te), seed))
    return out


def paper_splits(train_labels: np.ndarray, n_test: int, seeds=(0, 1, 2, 3, 4), val_fraction: float = 0.1,
                 groups=None):
    """The Caduceus/HyenaDNA Genomic Benchmarks protocol: per seed a random (stratified) 90/10 train/val
    split of the official TRAIN split (grouped when ``groups`` has duplicates); the official TEST split is
    scored once per seed."""
    train_labels = np.asarray(train_labels)
    _check_counts(train_labels, 2, "paper protocol train split")
    all_idx = np.arange(len(train_labels))
    out = []
    for s in seeds:
        tr, va = inner_split(all_idx, train_labels, val_fraction, int(s), groups)
        out.append(Split(f"seed{s}", tr, va, np.arange(n_test), int(s), train_set="train", test_set="test"))
    return out


def selection_pairs(labels: np.ndarray, train: np.ndarray, val: np.ndarray, cv_below: int = 2000, folds: int = 5,
                    seed: int = 0, groups=None) -> tuple:
    """The (fit, score) index pairs a grid search chooses its hyper-parameters on, all inside the training part
    ``train + val`` of one split (the held-out part is never among them).

    With at least ``cv_below`` records: the one inner pair ``(train, val)``. Below: a ``folds``-fold stratified
    (grouped, with duplicate ``groups``) CV of ``train + val`` -- with a few hundred records a 10% validation
    split holds a few dozen, too few to rank a grid. Returns ``(pairs, description)``."""
    train, val = np.asarray(train), np.asarray(val)
    rows = np.concatenate([train, val])
    labels = np.asarray(labels)
    if len(rows) >= cv_below or not len(val):
        return [(train, val)], f"inner validation split ({len(val)} records)"
    y = labels[rows]
    k = int(min(folds, np.bincount(y)[np.bincount(y) > 0].min()))
    if k < 2:
        return [(train, val)], f"inner validation split ({len(val)} records)"
    g = np.asarray(groups)[rows] if groups is not None else None
    parts = cv_splits(y, k, seed, 0.0, g)
    return ([(rows[p.train], rows[p.test]) for p in parts],
            f"{k}-fold CV of the training part ({len(rows)} records; fewer than {cv_below})")
