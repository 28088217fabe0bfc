"""Exact duplicates on either strand: keys, counts, cross-split leakage, grouped folds that never split a
group (with a negative control), the drop policy, and the report / console lines of the benchmark job."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from genodiff.benchmarks.datasets import LabeledSet, encode_sequences
from genodiff.benchmarks.duplicates import (across_summary, apply_policy, canonical_keys, duplicate_groups,
                                            split_summary)
from genodiff.benchmarks.folds import cv_splits, paper_splits
from genodiff.benchmarks.plain import decode
from genodiff.data.genome.alphabet import STR_COMPLEMENT
from genodiff.errors import InputError

from bench_helpers import motif_dataset


def rc(s: str) -> str:
    return s.translate(STR_COMPLEMENT)[::-1]


def planted(n_unique=120, seed=0):
    """Unique motif sequences plus planted copies: 15 same-strand copies, 15 reverse complements (same label),
    5 groups of three, 4 copies with the other label. Returns (seqs, labels, expected group sizes)."""
    seqs, labels = motif_dataset(n_unique, 40, seed=seed)
    rng = np.random.default_rng(seed)
    extra_s, extra_y = [], []
    for i in rng.choice(n_unique, 15, replace=False):
        extra_s.append(seqs[i]); extra_y.append(labels[i])
    for i in rng.choice(n_unique, 15, replace=False):
        extra_s.append(rc(seqs[i])); extra_y.append(labels[i])
    for i in rng.choice(n_unique, 4, replace=False):
        extra_s.append(seqs[i].lower() if i % 2 else rc(seqs[i])); extra_y.append(1 - labels[i])
    order = rng.permutation(len(seqs) + len(extra_s))
    all_s, all_y = seqs + extra_s, labels + extra_y
    return [all_s[i] for i in order], [all_y[i] for i in order]


def naive_groups(seqs, labels) -> dict:
    """{canonical sequence: [labels]} computed directly on the strings."""
    out = {}
    for s, y in zip(seqs, labels):
        s = s.upper()
        out.setdefault(min(s, rc(s)), []).append(y)
    return out


def as_set(seqs, labels) -> LabeledSet:
    ids, lengths, _, _ = encode_sequences(seqs)
    return LabeledSet(ids, lengths, np.asarray(labels), ["0", "1"])


def test_keys_groups_and_counts():
    a, b = "AACGTTTG", "GGCA"
    s = as_set([a, rc(a), a.lower(), b, "TGCC", "ACGN", "NCGT"], [0, 0, 1, 1, 1, 0, 0])
    keys = canonical_keys(s)
    g = duplicate_groups(keys)
    assert g.tolist() == [0, 0, 0, 1, 1, 2, 2]  # ACGN and NCGT are reverse complements
    summary = split_summary(s, keys)
    assert summary == {"records": 7, "unique": 3, "groups": 3, "records_in_groups": 7, "redundant_copies": 4,
                       "groups_with_both_strands": 3, "conflicting_groups": 1, "conflicting_records": 3}
    other = as_set([rc(b), "CCCC", a], [0, 1, 0])
    assert across_summary(s, other) == {"records": 3, "also_in_first": 2, "conflicting": 1}


def _groups_intact(split, groups) -> bool:
    side = {}
    for part, rows in (("train", split.train), ("val", split.val), ("test", split.test)):
        for g in groups[rows]:
            if side.setdefault(int(g), part) != part:
                return False
    return True


def test_grouped_folds_never_split_a_group_and_keep_does():
    seqs, labels = planted()
    data = as_set(seqs, labels)
    groups = duplicate_groups(canonical_keys(data))
    naive = naive_groups(seqs, labels)
    assert np.sum(np.bincount(groups) > 1) == sum(len(v) > 1 for v in naive.values()) >= 30
    for seed in (0, 1, 2):
        splits = cv_splits(data.labels, 5, seed, 0.1, groups)
        assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(len(data)))
        for s in splits:
            assert _groups_intact(s, groups), (seed, s.name)
            counts = np.bincount(data.labels[s.test], minlength=2)
            assert abs(int(counts[0]) - int(counts[1])) <= 6  # still stratified
    # negative control: plain stratified folds (cv.duplicates=keep) do split some group for this seed
    plain = cv_splits(data.labels, 5, 0, 0.1)
    assert not all(_groups_intact(s, groups) for s in plain)
    # the paper protocol's inner train/val split is grouped too
    for s in paper_splits(data.labels, 10, seeds=[0, 1], val_fraction=0.2, groups=groups):
        assert not set(groups[s.train]) & set(groups[s.val])
    # no duplicates: grouping changes nothing (same folds as before the option existed)
    uniq = np.arange(len(data))
    assert all(np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
               for a, b in zip(cv_splits(data.labels, 5, 0, 0.1, uniq), plain))


def test_drop_and_keep_policies():
    seqs, labels = planted()
    data = as_set(seqs, labels)
    naive = naive_groups(seqs, labels)
    conflicting = {k for k, ys in naive.items() if len(set(ys)) > 1}
    kept, groups, note = apply_policy(data, "drop")
    assert groups is None and f"{len(conflicting)} groups with conflicting labels" in note
    # conflicting groups vanish completely, every other sequence stays exactly once (with its label)
    assert len(kept) == len(naive) - len(conflicting)
    assert split_summary(kept)["groups"] == 0
    kept_seqs = [min(s, rc(s)) for s in decode(kept)]
    assert set(kept_seqs) == set(naive) - conflicting
    assert all(naive[s][0] == y for s, y in zip(kept_seqs, kept.labels.tolist()))
    same, groups, _ = apply_policy(data, "keep")
    assert same is data and groups is None
    _, groups, note = apply_policy(data, "group")
    assert groups is not None and f"{sum(len(v) > 1 for v in naive.values())} groups" in note
    # paper protocol: train records also in the test split are dropped
    test = as_set([seqs[0], rc(seqs[1])], [labels[0], labels[1]])
    kept, _, note = apply_policy(data, "drop", against=test)
    keys = set(canonical_keys(kept))
    assert not keys & set(canonical_keys(test)) and "also in the test split" in note
    with pytest.raises(InputError, match="cv.duplicates must be one of"):
        apply_policy(data, "merge")


def test_benchmark_job_reports_and_groups_duplicates(tmp_path, capsys):
    from test_task import FAST, compose_cfg
    from genodiff.tasks.benchmark import run

    seqs, labels = planted()
    path = tmp_path / "dups.csv"
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(seqs, labels)))
    out = tmp_path / "out"
    run(compose_cfg([f"task={path}", f"output_dir={out}", "methods=[kmer_lr]", *FAST]))
    naive = naive_groups(seqs, labels)
    n_groups = sum(len(v) > 1 for v in naive.values())
    conflicting = [v for v in naive.values() if len(set(v)) > 1]
    console = capsys.readouterr().out
    assert f"duplicates (either strand) all: {len(seqs)} records, {len(naive)} unique" in console
    assert f"cv.duplicates=group: {n_groups} groups" in console
    payload = json.loads((out / "results.json").read_text())
    within = payload["duplicates"]["within"]["all"]
    assert within["groups"] == n_groups and within["conflicting_groups"] == len(conflicting)
    assert within["groups_with_both_strands"] >= 15
    assert "StratifiedGroupKFold" in payload["protocol"]["protocol"]
    report = (out / "report.md").read_text()
    assert "## Duplicates (exact, either strand)" in report
    assert f"{len(conflicting)} groups ({sum(map(len, conflicting))} records) with conflicting labels" in report
    # every duplicate group's records were predicted in one and the same fold
    data = as_set(seqs, labels)
    groups = duplicate_groups(canonical_keys(data))
    fold_of = {}
    for row in csv.DictReader((out / "predictions.csv").open()):
        g = int(groups[int(row["test_index"])])
        assert fold_of.setdefault(g, row["split"]) == row["split"]
    # drop: one record per non-conflicting sequence left, no grouping needed
    out2 = tmp_path / "drop"
    run(compose_cfg([f"task={path}", f"output_dir={out2}", "methods=[kmer_lr]", "cv.duplicates=drop", *FAST]))
    payload = json.loads((out2 / "results.json").read_text())
    assert sum(u["n_test"] for u in payload["units"]) == len(naive) - len(conflicting)
    assert "StratifiedKFold" in payload["protocol"]["protocol"]
