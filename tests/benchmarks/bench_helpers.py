"""Helpers for the benchmark tests: small generated labeled data (no network, no shared data needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def random_seq(rng, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def motif_dataset(n: int = 120, length: int = 40, seed: int = 0, n_classes: int = 2):
    """Sequences whose class is visible (class c plants a class-specific motif), unique per row."""
    rng = np.random.default_rng(seed)
    motifs = ["GGGGCCCC", "ATATATAT", "CAGTCAGT"][:n_classes]
    seqs, labels = [], []
    for i in range(n):
        c = i % n_classes
        s = list(random_seq(rng, length))
        p = int(rng.integers(0, length - 8))
        s[p:p + 8] = motifs[c]
        seqs.append("".join(s))
        labels.append(c)
    return seqs, labels


def motif_csv(tmp_path, n: int = 120) -> Path:
    seqs, labels = motif_dataset(n)
    path = tmp_path / "motif.csv"
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(seqs, labels)))
    return path


def write_gb_folder(root: Path, seqs_by_split: dict) -> Path:
    """``root/{split}/{class}/{i}.txt``."""
    for split, by_class in seqs_by_split.items():
        for cls, seqs in by_class.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i, s in enumerate(seqs):
                (d / f"{i}.txt").write_text(s + "\n")
    return root


def write_fasta_gz(path: Path, records: dict) -> Path:
    with gzip.open(path, "wt") as fh:
        for name, seq in records.items():
            fh.write(f">{name}\n")
            for i in range(0, len(seq), 60):
                fh.write(seq[i:i + 60] + "\n")
    return path
