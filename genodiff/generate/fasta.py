"""FASTA in and out for generated and scored sequences (Biopython ``SeqIO`` underneath).

Written FASTA: ``>ID description`` where ID has no whitespace (characters outside ``[A-Za-z0-9_.|+-]`` (so also ``:``, which samtools reads as a region)
become ``_``) and provenance ``key=value`` pairs follow the first space; every sequence line except a
record's last has exactly ``width`` bases (default 60), so ``pyfaidx`` and ``samtools faidx`` index it.
Files are written to a temporary name and renamed, so a failed run leaves no partial file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from genodiff.errors import InputError

__all__ = ["sanitize_id", "format_description", "write_fasta", "read_fasta", "atomic_write_text"]

_BAD_ID = re.compile(r"[^A-Za-z0-9_.|+\-]")
DNA_CHARS = set("ACGTNURYSWKMBDHV")
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


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_fasta(path: str | Path, records: Iterable[tuple[str, str, str]], width: int = 60) -> Path:
    """Write ``(id, description, sequence)`` records with Biopython's FASTA writer (``wrap=width``).

    IDs are passed through :func:`sanitize_id`; duplicate IDs raise ``ValueError`` (faidx needs unique names).
    """
    from Bio.Seq import Seq
    from Bio.SeqIO.FastaIO import FastaWriter
    from Bio.SeqRecord import SeqRecord

    if width < 1:
        raise InputError(f"line width must be >= 1, got {width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    seen: set[str] = set()
    try:
        with os.fdopen(fd, "w") as fh:
            def seq_records():
                for rid, desc, seq in records:
                    rid = sanitize_id(rid)
                    if rid in seen:
                        raise ValueError(f"duplicate FASTA id {rid!r}")
                    seen.add(rid)
                    desc = " ".join(str(desc or "").split())
                    yield SeqRecord(Seq(seq), id=rid, description=f"{rid} {desc}".strip())

            FastaWriter(fh, wrap=width).write_records(seq_records())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_fasta(path: str | Path, allowed: set[str] | None = None, what: str = "input") -> list[tuple[str, str]]:
    """``[(id, SEQUENCE upper-case)]`` of a FASTA file read with ``Bio.SeqIO``.

    Raises :class:`InputError` (one line) for a missing / empty / non-FASTA file, duplicate IDs or characters
    outside ``allowed`` (default: IUPAC nucleotides, ``U`` and ``?``).
    """
    from Bio import SeqIO

    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise InputError(f"{what}: {path}: file not found")
    allowed = DNA_TEMPLATE_CHARS if allowed is None else allowed
    with open(path, "rb") as fh:
        head = fh.read(1)
    if head == b"\x1f":
        import gzip
        opener = lambda: gzip.open(path, "rt")  # noqa: E731
    else:
        opener = lambda: open(path, "rt")  # noqa: E731
        first = ""
        with opener() as fh:
            for line in fh:
                if line.strip():
                    first = line
                    break
        if not first.startswith(">"):
            raise InputError(f"{what}: {path}: not a FASTA file (first non-empty line does not start with '>')")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    try:
        with opener() as fh:
            for rec in SeqIO.parse(fh, "fasta"):
                seq = str(rec.seq).upper()
                bad = set(seq) - allowed
                if bad:
                    raise InputError(f"{what}: {path} record {rec.id}: non-DNA character {sorted(bad)[0]!r}")
                if rec.id in seen:
                    raise InputError(f"{what}: {path}: duplicate record id {rec.id!r}")
                seen.add(rec.id)
                out.append((rec.id, seq))
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputError(f"{what}: {path}: cannot read FASTA ({exc.__class__.__name__})") from None
    if not out:
        raise InputError(f"{what}: {path}: no FASTA records")
    return out


def wrap_check(path: str | Path) -> None:
    """Re-validate a written FASTA with genodiff's strict scanner (consistent wrapping, DNA only)."""
    from genodiff.data.fasta import scan_fasta

    scan_fasta(path)


def records_to_dict(records: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {rid: seq for rid, seq in records}
