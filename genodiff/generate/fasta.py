"""FASTA in and out for generated and scored sequences, through genodiff's one FASTA reader and writer
(:mod:`genodiff.data.genome.fasta`).

Written FASTA: ``>ID description`` where ID has no whitespace (characters outside ``[A-Za-z0-9_.|+-]`` (so also ``:``, which samtools reads as a region)
become ``_``) and provenance ``key=value`` pairs follow the first space; every sequence line except a
record's last has exactly ``width`` bases (default 60), so ``pyfaidx`` and ``samtools faidx`` index it.
Files are written to a temporary name and renamed, so a failed run leaves no partial file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from genodiff.data.genome import fasta
from genodiff.data.genome.alphabet import IUPAC_LETTERS
from genodiff.errors import InputError

__all__ = ["sanitize_id", "format_description", "write_fasta", "read_fasta", "DNA_CHARS", "DNA_TEMPLATE_CHARS"]

_BAD_ID = re.compile(r"[^A-Za-z0-9_.|+\-]")
DNA_CHARS = set(IUPAC_LETTERS)
DNA_TEMPLATE_CHARS = DNA_CHARS | {"?"}


def sanitize_id(name: str) -> str:
    """A FASTA ID without whitespace or shell-hostile characters (replaced by ``_``); never empty."""
    out = _BAD_ID.sub("_", str(name).strip())
    return out or "seq"


def format_description(pairs: dict) -> str:
    """``key=value key=value``; spaces inside values become ``_`` so the header stays one token per pair."""
    parts = []
    for key, value in pairs.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}={str(value).replace(' ', '_')}")
    return " ".join(parts)


def write_fasta(path: str | Path, records: Iterable[tuple[str, str, str]], width: int = 60) -> Path:
    """Write ``(id, description, sequence)`` records as ``>id description`` FASTA with ``width``-base lines.

    IDs are passed through :func:`sanitize_id`; duplicate IDs raise ``ValueError`` (faidx needs unique names).
    """
    seen: set[str] = set()

    def headed():
        for rid, desc, seq in records:
            rid = sanitize_id(rid)
            if rid in seen:
                raise ValueError(f"duplicate FASTA id {rid!r}")
            seen.add(rid)
            desc = " ".join(str(desc or "").split())
            yield f"{rid} {desc}".strip(), seq

    return fasta.write_fasta(path, headed(), width)


def read_fasta(path: str | Path, allowed: set[str] | None = None, what: str = "input") -> list[tuple[str, str]]:
    """``[(id, SEQUENCE upper-case)]`` of a FASTA file (plain or gzip), validated by genodiff's FASTA reader.

    Raises :class:`InputError` (one line, starting with ``what``) for a missing / empty / non-FASTA file,
    duplicate IDs, inconsistent line wrapping or characters outside ``allowed`` (default: IUPAC nucleotides,
    ``U`` and ``?``).
    """
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise InputError(f"{what}: {path}: file not found")
    allowed = DNA_TEMPLATE_CHARS if allowed is None else set(allowed)
    extra = "".join(sorted(c for c in allowed if c.upper() not in DNA_CHARS))
    try:
        records = fasta.read_fasta_records(path, keep_case=False, extra_chars=extra)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    out = []
    for name, seq in records.items():
        text = seq.tobytes().decode("ascii")
        bad = set(text) - allowed
        if bad:
            raise InputError(f"{what}: {path} record {name}: non-DNA character {sorted(bad)[0]!r}")
        out.append((name, text))
    return out
