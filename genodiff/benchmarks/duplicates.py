"""Exact duplicates on either strand: leakage report, CV groups and the ``cv.duplicates`` policy.

Two records are duplicates when their sequences are identical or reverse complements of each other: the key
of a record is ``min(seq, revcomp(seq))`` of its upper-case sequence (N stays N), hashed in a dict.

* :func:`duplicate_report`: per split, the duplicate groups (records sharing a key), how many of them join
  the two strands, and the groups whose records carry different labels; across official splits, the
  records of a later split whose sequence (either strand) occurs in an earlier one, and with another label.
* ``cv.duplicates`` (:func:`apply_policy`): ``group`` (default) keeps every group in one fold (and one side
  of each inner train/val split) via scikit-learn's ``StratifiedGroupKFold``; ``drop`` removes, before any
  split, every record of a group with conflicting labels and all but the first record of the other groups
  (paper protocol: also train records whose sequence occurs in the test split); ``keep`` does neither
  (plain stratified folds: a duplicate can land on both sides of a split).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from genodiff.data.genome.alphabet import BYTES_COMPLEMENT, ID_TO_BYTE
from genodiff.errors import InputError

__all__ = ["POLICIES", "canonical_keys", "duplicate_groups", "split_summary", "across_summary",
           "duplicate_report", "apply_policy", "format_duplicates"]

POLICIES = ("group", "drop", "keep")


def canonical_keys(data) -> list:
    """``min(seq, revcomp(seq))`` (bytes) of every record of a LabeledSet; text sets (``kind="text"``, no
    strands): the token ids themselves."""
    if getattr(data, "kind", "dna") == "text":
        return [data.ids[i, :n].tobytes() for i, n in enumerate(np.asarray(data.lengths))]
    text = ID_TO_BYTE[data.ids]
    keys = []
    for i, n in enumerate(np.asarray(data.lengths)):
        s = text[i, :n].tobytes()
        rc = s.translate(BYTES_COMPLEMENT)[::-1]
        keys.append(min(s, rc))
    return keys


def duplicate_groups(keys) -> np.ndarray:
    """Group id per record (ids in order of first occurrence); duplicates share an id."""
    index: dict = {}
    return np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))


def split_summary(data, keys=None) -> dict:
    """Duplicate counts inside one labeled set."""
    keys = canonical_keys(data) if keys is None else keys
    groups = duplicate_groups(keys)
    labels = np.asarray(data.labels)
    n = len(keys)
    sizes = np.bincount(groups)
    dup = np.flatnonzero(sizes > 1)
    in_groups = int(sizes[dup].sum())
    conflicting, conflicting_records, both_strands = 0, 0, 0
    if dup.size:
        text = ID_TO_BYTE[data.ids] if getattr(data, "kind", "dna") != "text" else data.ids
        members: dict = {}
        for i in np.flatnonzero(np.isin(groups, dup)):
            members.setdefault(int(groups[i]), []).append(int(i))
        for rows in members.values():
            if np.unique(labels[rows]).size > 1:
                conflicting += 1
                conflicting_records += len(rows)
            seqs = {text[r, :data.lengths[r]].tobytes() for r in rows}
            if len(seqs) > 1:  # identical keys, different sequences: reverse complements
                both_strands += 1
    return {"records": n, "unique": int(sizes.size), "groups": int(dup.size), "records_in_groups": in_groups,
            "redundant_copies": n - int(sizes.size), "groups_with_both_strands": both_strands,
            "conflicting_groups": conflicting, "conflicting_records": conflicting_records}


def across_summary(first, second, keys_first=None, keys_second=None) -> dict:
    """Records of ``second`` whose sequence (either strand) occurs in ``first``; ``conflicting``: those whose
    label is not among the labels of that sequence in ``first``."""
    kf = canonical_keys(first) if keys_first is None else keys_first
    ks = canonical_keys(second) if keys_second is None else keys_second
    labels_of: dict = {}
    for k, y in zip(kf, np.asarray(first.labels).tolist()):
        labels_of.setdefault(k, set()).add(y)
    shared = conflicting = 0
    for k, y in zip(ks, np.asarray(second.labels).tolist()):
        if k in labels_of:
            shared += 1
            conflicting += y not in labels_of[k]
    return {"records": len(ks), "also_in_first": shared, "conflicting": conflicting}


def duplicate_report(splits: dict) -> dict:
    """``{"within": {split: split_summary}, "across": [{"first", "second", ...across_summary}]}`` for the
    splits of a task (``{name: LabeledSet}``, official order)."""
    keys = {name: canonical_keys(s) for name, s in splits.items()}
    within = {name: split_summary(s, keys[name]) for name, s in splits.items()}
    names = list(splits)
    across = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            across.append({"first": a, "second": b, **across_summary(splits[a], splits[b], keys[a], keys[b])})
    return {"within": within, "across": across}


def apply_policy(labeled, policy: str, against=None):
    """Apply ``cv.duplicates`` to the set that is split. Returns ``(set, groups or None, note)``.

    ``against``: the official test split (paper protocol); ``drop`` also removes records found in it.
    ``groups`` is None when nothing needs grouping (policy ``keep``/``drop``, or no duplicates)."""
    if policy not in POLICIES:
        raise InputError(f"cv.duplicates must be one of {', '.join(POLICIES)}, got {policy!r}")
    keys = canonical_keys(labeled)
    groups = duplicate_groups(keys)
    n_groups = int(np.sum(np.bincount(groups) > 1))
    if policy == "keep":
        return labeled, None, (f"cv.duplicates=keep: {n_groups} duplicate groups left as they are (a group can "
                               "be split across folds)")
    if policy == "group":
        if n_groups == 0:
            return labeled, None, "cv.duplicates=group: no duplicates, plain stratified splits"
        return labeled, groups, (f"cv.duplicates=group: {n_groups} groups of identical sequences (either strand) "
                                 "each kept on one side of every split (StratifiedGroupKFold)")
    labels = np.asarray(labeled.labels)
    first_label: dict = {}
    conflicted = set()
    for g, y in zip(groups.tolist(), labels.tolist()):
        if first_label.setdefault(g, y) != y:
            conflicted.add(g)
    seen, keep = set(), []
    test_keys = set(canonical_keys(against)) if against is not None else set()
    n_conflict = n_copy = n_test = 0
    for i, (g, key) in enumerate(zip(groups.tolist(), keys)):
        if g in conflicted:
            n_conflict += 1
        elif key in test_keys:
            n_test += 1
        elif g in seen:
            n_copy += 1
        else:
            seen.add(g)
            keep.append(i)
    note = (f"cv.duplicates=drop: removed {n_conflict} records in {len(conflicted)} groups with conflicting labels "
            f"and {n_copy} redundant copies" + (f" and {n_test} train records also in the test split"
                                                if against is not None else "") + f"; {len(keep)} records left")
    return labeled.subset(np.asarray(keep, dtype=np.int64)), None, note


def format_duplicates(report: dict, note: Optional[str] = None) -> list:
    """Human-readable lines (console and report.md); ``note`` (default: ``report["policy"]``) comes last."""
    note = note or report.get("policy")
    lines = []
    for name, s in report["within"].items():
        lines.append(f"{name}: {s['records']} records, {s['unique']} unique (either strand); {s['groups']} duplicate "
                     f"groups ({s['records_in_groups']} records, {s['groups_with_both_strands']} joining both "
                     f"strands); {s['conflicting_groups']} groups ({s['conflicting_records']} records) with "
                     "conflicting labels")
    for a in report["across"]:
        lines.append(f"{a['second']} vs {a['first']}: {a['also_in_first']} of {a['records']} {a['second']} records "
                     f"also in {a['first']} (either strand), {a['conflicting']} of them with another label")
    if note:
        lines.append(note)
    return lines
