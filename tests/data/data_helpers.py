"""Helpers shared by the tests in tests/data (a uniquely named module, not conftest)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def wrap(seq: str, width: int) -> str:
    return "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))


def random_dna(rng: np.random.Generator, n: int, alphabet: str = "ACGTacgt") -> str:
    letters = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    return letters[rng.integers(0, len(letters), n)].tobytes().decode()


def write_fasta(path: Path, records: dict, width: int = 60, compress: str = "plain", crlf: bool = False) -> Path:
    """Write ``records`` ({name: seq}) as FASTA: compress in plain | gzip | bgzip."""
    text = "".join(f">{name} generated\n" + wrap(seq, width) for name, seq in records.items())
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode()
    if compress == "plain":
        path.write_bytes(data)
    elif compress == "gzip":
        path.write_bytes(gzip.compress(data))
    elif compress == "bgzip":
        from Bio import bgzf
        with bgzf.BgzfWriter(str(path), "wb") as w:
            w.write(data)
    else:  # pragma: no cover
        raise ValueError(compress)
    return path
