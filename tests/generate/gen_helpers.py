"""Plain helpers of the generate / score / analyze tests (a module of its own: ``from conftest import ...``
resolves to whichever folder's conftest was loaded last when several test folders are collected together)."""

from __future__ import annotations

import random
from pathlib import Path


def write_fasta_text(path: Path, records: dict[str, str], width: int = 60) -> Path:
    path.write_text("".join(f">{k}\n" + "".join(s[i:i + width] + "\n" for i in range(0, len(s), width))
                            for k, s in records.items()))
    return path


def random_dna(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))
