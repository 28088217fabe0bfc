"""BED intervals, train/valid/test splits, fixed-length windows and N filtering.

Coordinates are 0-based half-open (BED convention) everywhere in this module.

* :func:`read_bed` reads BED (plain or gzip) with validation: ``track``/``browser``/``#`` lines and a
  header line are skipped; every other line needs >= 3 columns with integer ``start <= end``,
  ``start >= 0``; with ``genome_lengths`` the chromosome must exist (aliases resolved) and ``end``
  must not pass its end. Problems raise :class:`InputError` ``"<file> line <n>: <problem>"``.
* Splits: :func:`split_by_column` (Basenji ``train/valid/test`` or any labels, e.g. Borzoi folds with a
  mapping) and :func:`split_by_chromosome` (chromosome holdout).
* :func:`tile_windows` cuts fixed-length windows with a stride; :func:`filter_windows_by_n` drops
  windows whose N fraction (padding counted as N) exceeds a threshold, and always all-N windows.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from genodiff.data.genome.aliases import AliasMapping, ChromAliases
from genodiff.data.genome.fasta import compression_of
from genodiff.errors import InputError

PathLike = Union[str, os.PathLike]

#: synonyms accepted in a split column, mapped to the Basenji names.
SPLIT_SYNONYMS = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                  "val": "valid", "dev": "valid", "test": "test", "testing": "test"}


_STRANDS = {"+": False, "-": True, ".": False}


def parse_strand(strand) -> bool:
    """True for the reverse strand ``-``, False for ``+`` and ``.``; anything else raises InputError."""
    try:
        return _STRANDS[strand]
    except (KeyError, TypeError):
        raise InputError(f"invalid strand {strand!r}: expected '+' or '-'") from None


def check_range(chrom: str, start, end) -> tuple[int, int]:
    """``(int(start), int(end))`` of ``chrom:[start, end)``; InputError when ``end < start``."""
    start, end = int(start), int(end)
    if end < start:
        raise InputError(f"invalid interval {chrom}:{start}-{end}: end < start")
    return start, end


def resolve_chrom(aliases: ChromAliases, chrom: str, where) -> str:
    """The genome's name for ``chrom`` (exact, manifest alias or chr toggled); InputError naming ``where``
    and a few of the genome's names if none matches."""
    name = aliases.resolve(chrom)
    if name is None:
        shown = ", ".join(aliases.names[:5]) + (", ..." if len(aliases.names) > 5 else "")
        raise InputError(f"unknown chromosome {chrom!r} in {where} (has: {shown})")
    return name


@dataclass(frozen=True)
class Interval:
    """A 0-based half-open interval ``chrom:[start, end)`` with an optional split label.

    ``origin`` is ``"file:line"`` when read from a file (used in error messages), else ``""``.
    """

    chrom: str
    start: int
    end: int
    split: Optional[str] = None
    origin: str = ""

    @property
    def length(self) -> int:
        return self.end - self.start


class IntervalList(list):
    """A list of :class:`Interval` with ``skipped`` counts from :func:`read_bed` (reason -> count)."""

    def __init__(self, items: Iterable[Interval] = (), skipped: Optional[dict] = None):
        super().__init__(items)
        self.skipped = dict(skipped or {})


def _is_int(s: str) -> bool:
    s = s.strip()
    if s.startswith(("+", "-")):
        s = s[1:]
    return s.isdigit()


def _open_text(path: Path):
    if compression_of(path) != "plain":
        return gzip.open(path, "rt", encoding="utf-8", newline=None)
    return open(path, "r", encoding="utf-8", newline=None)


def read_bed(path: PathLike, genome_lengths: Optional[Mapping[str, int]] = None,
             aliases: Optional[AliasMapping] = None, *, split_column: Union[int, None, str] = "auto",
             unknown_chrom: str = "error", out_of_bounds: str = "error") -> IntervalList:
    """Read and validate a BED file (plain or gzip). Coordinates are 0-based half-open.

    Args:
        path: BED file.
        genome_lengths: ``{chrom: length}`` of the genome; enables the chromosome / bounds checks and
            renames chromosomes to the genome's names (aliases + chr toggling).
        aliases: manifest aliases ``{canonical: [alias, ...]}``.
        split_column: 0-based column holding the split label; ``"auto"`` = the 4th column (index 3)
            when present; ``None`` = no split column.
        unknown_chrom: ``"error"`` or ``"skip"`` intervals whose chromosome is not in the genome.
        out_of_bounds: ``"error"``, ``"clip"`` (clip ``end`` to the chromosome length; intervals that
            become empty are skipped) or ``"skip"`` intervals that pass the chromosome end.
    Returns:
        :class:`IntervalList` (a list of :class:`Interval`); ``.skipped`` counts skipped intervals.
    Raises:
        InputError: ``"<path> line <n>: <problem>"`` for too few columns, non-integer or negative
            coordinates, ``end < start``, unknown chromosome, past the chromosome end, bad split label.
    """
    if unknown_chrom not in ("error", "skip"):
        raise ValueError("unknown_chrom must be 'error' or 'skip'")
    if out_of_bounds not in ("error", "clip", "skip"):
        raise ValueError("out_of_bounds must be 'error', 'clip' or 'skip'")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: BED file not found")
    resolver = ChromAliases(genome_lengths.keys(), aliases) if genome_lengths is not None else None
    out = IntervalList()
    skipped = {"unknown_chrom": 0, "out_of_bounds": 0}
    seen_content = False
    lineno = 0
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                stripped = line.strip()
                if not stripped or stripped.startswith("#") or stripped.startswith(("track ", "browser ")) \
                        or stripped in ("track", "browser"):
                    continue
                fields = line.split("\t") if "\t" in line else line.split()
                where = f"{path} line {lineno}"
                if len(fields) < 3:
                    raise InputError(f"{where}: too few columns ({len(fields)}); BED needs chrom, start, end")
                chrom, s_start, s_end = fields[0].strip(), fields[1].strip(), fields[2].strip()
                if not seen_content and not _is_int(s_start) and not _is_int(s_end):
                    seen_content = True  # a header line such as "chrom start end split"
                    continue
                seen_content = True
                if not chrom:
                    raise InputError(f"{where}: empty chromosome name")
                for label, val in (("start", s_start), ("end", s_end)):
                    if not _is_int(val):
                        raise InputError(f"{where}: {label} {val!r} is not an integer")
                start, end = int(s_start), int(s_end)
                if start < 0 or end < 0:
                    raise InputError(f"{where}: negative coordinate ({start}, {end}); BED is 0-based, >= 0")
                if end < start:
                    raise InputError(f"{where}: end {end} < start {start}")
                split = None
                col = 3 if split_column == "auto" else split_column
                if col is not None:
                    if col < len(fields):
                        split = fields[col].strip() or None
                    elif split_column != "auto":
                        raise InputError(f"{where}: no split column {col + 1} (line has {len(fields)} columns)")
                if resolver is not None:
                    name = resolver.resolve(chrom)
                    if name is None:
                        if unknown_chrom == "skip":
                            skipped["unknown_chrom"] += 1
                            continue
                        raise InputError(f"{where}: unknown chromosome {chrom!r} (not in the genome; "
                                         f"check the naming style, e.g. chr1 vs 1, or the manifest aliases)")
                    chrom = name
                    n = int(genome_lengths[name])
                    if end > n:
                        if out_of_bounds == "error":
                            raise InputError(f"{where}: end {end} is past the end of {name} (length {n})")
                        skipped["out_of_bounds"] += 1
                        if out_of_bounds == "skip" or start >= n:
                            continue
                        end = n
                out.append(Interval(chrom, start, end, split, f"{path}:{lineno}"))
    except UnicodeDecodeError:
        raise InputError(f"{path} line {lineno + 1}: not UTF-8 text (is this a BED file?)") from None
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: cannot read BED ({e})") from None
    out.skipped = {k: v for k, v in skipped.items() if v}
    return out


# ------------------------------------------------------------------------------------------ splits
def split_by_column(intervals: Sequence[Interval], mapping: Optional[Mapping[str, str]] = None,
                    default: Optional[str] = None) -> dict[str, list[Interval]]:
    """Group intervals by their split label (0-based half-open intervals are kept unchanged).

    ``mapping`` renames labels (e.g. Borzoi ``{"fold3": "test", "fold4": "valid"}`` with
    ``default="train"``); without it, Basenji labels and synonyms (``validation``, ``val``, ``dev``)
    become ``train``/``valid``/``test`` and other labels are kept as they are.
    Raises InputError naming the interval's file:line if a label is missing (and no ``default``),
    or is not in ``mapping`` (and no ``default``).
    """
    out: dict[str, list[Interval]] = {}
    for iv in intervals:
        label = iv.split
        if label is None:
            if default is None:
                raise InputError(f"{iv.origin or iv.chrom}: interval has no split label")
            target = default
        elif mapping is not None:
            if label in mapping:
                target = mapping[label]
            elif default is not None:
                target = default
            else:
                raise InputError(f"{iv.origin or iv.chrom}: split label {label!r} is not one of "
                                 f"{sorted(mapping)}")
        else:
            target = SPLIT_SYNONYMS.get(label.lower(), label)
        out.setdefault(target, []).append(iv)
    return out


def split_by_chromosome(intervals: Sequence[Interval], valid_chroms: Iterable[str] = (),
                        test_chroms: Iterable[str] = (), aliases: Optional[AliasMapping] = None
                        ) -> dict[str, list[Interval]]:
    """Chromosome holdout: intervals on ``test_chroms`` -> ``test``, on ``valid_chroms`` -> ``valid``,
    the rest -> ``train``. Names match through aliases and chr toggling (``chr8`` == ``8``).
    Intervals (0-based half-open) are returned unchanged."""
    resolver = ChromAliases(sorted({iv.chrom for iv in intervals}), aliases)
    test = {resolver.resolve(c) for c in test_chroms} - {None}
    valid = {resolver.resolve(c) for c in valid_chroms} - {None}
    overlap = test & valid
    if overlap:
        raise InputError(f"chromosome holdout: {sorted(overlap)} are in both valid and test")
    out: dict[str, list[Interval]] = {"train": [], "valid": [], "test": []}
    for iv in intervals:
        key = "test" if iv.chrom in test else "valid" if iv.chrom in valid else "train"
        out[key].append(iv)
    return out


# ------------------------------------------------------------------------------------------ windows
class Windows:
    """Fixed-length windows ``chrom:[start, start + length)`` (0-based half-open) as numpy arrays.

    Attributes:
        chrom_names: list of chromosome names; ``chrom_codes`` (np.int32 [W]) index into it.
        starts: np.int64 [W]; ``length``: the common window length L.
        splits: optional list of labels per window (or None).
    """

    def __init__(self, chrom_names: Sequence[str], chrom_codes, starts, length: int,
                 splits: Optional[Sequence[Optional[str]]] = None):
        self.chrom_names = list(chrom_names)
        self.chrom_codes = np.asarray(chrom_codes, dtype=np.int32)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.length = int(length)
        self.splits = list(splits) if splits is not None else None
        if self.chrom_codes.shape != self.starts.shape:
            raise ValueError("chrom_codes and starts must have the same shape")

    @classmethod
    def from_tuples(cls, items: Iterable, length: Optional[int] = None) -> "Windows":
        """From ``(chrom, start, end)`` tuples or :class:`Interval` objects, all of the same length."""
        names: dict[str, int] = {}
        codes, starts, lens = [], [], set()
        for it in items:
            chrom, start, end = (it.chrom, it.start, it.end) if isinstance(it, Interval) else it[:3]
            codes.append(names.setdefault(chrom, len(names)))
            starts.append(int(start))
            lens.add(int(end) - int(start))
        if length is None:
            if len(lens) > 1:
                raise ValueError(f"windows have different lengths {sorted(lens)[:5]}; use tile_windows")
            length = lens.pop() if lens else 0
        elif lens and lens != {int(length)}:
            raise ValueError(f"windows must all have length {length}")
        return cls(list(names), codes, starts, int(length))

    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, i: int) -> tuple[str, int, int]:
        s = int(self.starts[i])
        return self.chrom_names[self.chrom_codes[i]], s, s + self.length

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def subset(self, mask_or_index) -> "Windows":
        """Windows selected by a boolean mask or an index array."""
        sel = np.asarray(mask_or_index)
        if sel.dtype == bool:
            sel = np.flatnonzero(sel)
        splits = [self.splits[j] for j in sel.tolist()] if self.splits is not None else None
        return Windows(self.chrom_names, self.chrom_codes[sel], self.starts[sel], self.length, splits)

    def __repr__(self) -> str:
        return f"Windows(n={len(self)}, length={self.length}, chroms={len(self.chrom_names)})"


def tile_windows(intervals: Iterable, length: int, stride: Optional[int] = None, *,
                 include_tail: bool = False) -> Windows:
    """Cut fixed-length windows from intervals (0-based half-open).

    For an interval ``[s, e)`` windows start at ``s, s + stride, ...`` while ``start + length <= e``;
    intervals shorter than ``length`` give no window. With ``include_tail`` a last window
    ``[e - length, e)`` is added when the regular ones do not reach ``e``.
    ``stride`` defaults to ``length`` (no overlap). Accepts :class:`Interval` objects or
    ``(chrom, start, end[, split])`` tuples. Returns :class:`Windows` (split labels carried).
    """
    length = int(length)
    stride = length if stride is None else int(stride)
    if length <= 0 or stride <= 0:
        raise ValueError(f"length and stride must be positive (got {length}, {stride})")
    names: dict[str, int] = {}
    code_parts, start_parts, split_parts = [], [], []
    any_split = False
    for it in intervals:
        if isinstance(it, Interval):
            chrom, s, e, split = it.chrom, it.start, it.end, it.split
        else:
            chrom, s, e = it[:3]
            split = it[3] if len(it) > 3 else None
        s, e = int(s), int(e)
        if e - s < length:
            continue
        st = np.arange(s, e - length + 1, stride, dtype=np.int64)
        if include_tail and st[-1] + length < e:
            st = np.append(st, e - length)
        code = names.setdefault(chrom, len(names))
        code_parts.append(np.full(st.size, code, dtype=np.int32))
        start_parts.append(st)
        split_parts.append((split, st.size))
        any_split = any_split or split is not None
    if start_parts:
        codes = np.concatenate(code_parts)
        starts = np.concatenate(start_parts)
    else:
        codes = np.zeros(0, np.int32)
        starts = np.zeros(0, np.int64)
    splits = None
    if any_split:
        splits = [lab for lab, n in split_parts for _ in range(n)]
    return Windows(list(names), codes, starts, length, splits)


def genome_intervals(lengths: Mapping[str, int], chroms: Optional[Iterable[str]] = None) -> list[Interval]:
    """Whole-chromosome intervals ``[0, length)`` (0-based half-open), e.g. to tile a whole genome."""
    keep = list(lengths) if chroms is None else list(chroms)
    return [Interval(c, 0, int(lengths[c])) for c in keep]


def window_n_fraction(windows: Windows, genome) -> np.ndarray:
    """N fraction of each window (0-based half-open, np.float64 [W]); padding past chromosome ends is N.

    ``genome`` is an :class:`~genodiff.data.genome.cache.EncodedGenome` (uses its N-run index, vectorized).
    """
    if len(windows) == 0:
        return np.zeros(0, dtype=np.float64)
    code_to_idx = np.asarray([genome.chrom_index(n) for n in windows.chrom_names], dtype=np.int64)
    ci = code_to_idx[windows.chrom_codes]
    return genome.n_fraction(ci, windows.starts, windows.starts + windows.length)


def filter_windows_by_n(windows: Windows, genome, max_n_fraction: float = 0.5) -> Windows:
    """Drop windows with an N fraction above ``max_n_fraction`` (padding counts as N).

    All-N windows are always dropped (even with ``max_n_fraction >= 1``) so no batch can consist only
    of N. Coordinates 0-based half-open.
    """
    frac = window_n_fraction(windows, genome)
    keep = (frac <= max_n_fraction) & (frac < 1.0)
    return windows.subset(keep)
