"""Labeled DNA sequence sets for the classification benchmark.

Sources (all end up as a :class:`LabeledSet`: token ids tokenized ONCE into a padded ``np.uint8`` matrix):

* a table (CSV / TSV / parquet, optionally gzip) with a sequence and a label column
  (GUE, Nucleotide Transformer, the Genomic Benchmarks CSV exports): :func:`load_table`;
* the Genomic Benchmarks materialized layout ``<name>/{train,test}/<class>/*.txt``: :func:`load_gb_folder`;
* Genomic Benchmarks coordinate CSVs (``id,region,start,end,strand``) + a reference genome:
  :func:`genodiff.benchmarks.gb.load_gb_coordinates`.

Label semantics (the point of this module): class ids are assigned from the SORTED class names, never
from file-system or file order. Folder names sort as strings (``negative`` -> 0, ``positive`` -> 1);
label-column values sort numerically when all are integers (``2 < 10``), else as strings. The mapping
is stored on the set (:attr:`LabeledSet.classes`) and written to every report.

Every problem with the input (missing file or column, one class only, empty sequence, non-DNA
character) raises :class:`~genodiff.errors.InputError` with one line naming the file and row.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from genodiff.data.genome.alphabet import AMBIGUOUS_BYTES, BYTE_TO_ID, INVALID, describe_byte
from genodiff.data.genome.vocab import PAD_ID
from genodiff.errors import InputError

__all__ = ["LabeledSet", "BenchmarkData", "class_order", "encode_sequences", "load_table", "load_gb_folder",
           "load_split_folder", "SEQ_COLUMNS", "LABEL_COLUMNS", "TABLE_SUFFIXES"]

SEQ_COLUMNS = ("sequence", "seq", "Sequence", "Seq", "dna", "text")
LABEL_COLUMNS = ("label", "labels", "Label", "class", "y", "target")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
SPLIT_NAMES = ("train", "dev", "valid", "validation", "val", "test")


@dataclass
class LabeledSet:
    """Tokenized labeled sequences.

    ids: (N, L) np.uint8, right-padded with ``[PAD]`` (vocab ids of genodiff/data/genome/vocab.py).
    lengths: (N,) np.int32 real lengths. labels: (N,) np.int64 in ``0..len(classes)-1``.
    classes: class names; ``classes[i]`` is the name of label id ``i`` (sorted).
    """

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    classes: list
    source: str = ""
    n_truncated: int = 0
    n_ambiguous: int = 0
    kind: str = "dna"  # "text": ids of a text tokenizer (int32, padded with its [PAD]; genodiff.benchmarks.text_tasks)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> "LabeledSet":
        index = np.asarray(index)
        lengths = self.lengths[index]
        L = int(lengths.max()) if lengths.size else 0
        return LabeledSet(self.ids[index, :L], lengths, self.labels[index], list(self.classes), self.source,
                          kind=self.kind)

    def class_counts(self) -> dict:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}


@dataclass
class BenchmarkData:
    """A benchmark task: one or more labeled splits sharing one class mapping."""

    name: str
    splits: dict
    classes: list
    source: str = ""
    notes: list = field(default_factory=list)

    @property
    def label_map(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "classes": list(self.classes),
                "label_map": self.label_map,
                "splits": {k: {"n": len(v), "class_counts": v.class_counts(),
                               "min_length": int(v.lengths.min()), "max_length": int(v.lengths.max()),
                               "n_truncated": v.n_truncated, "n_ambiguous": v.n_ambiguous}
                           for k, v in self.splits.items()}}


# ----------------------------------------------------------------------------------------- labels
def _is_int_like(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, (float, np.floating)):
        return float(value).is_integer()
    s = str(value).strip()
    return s.lstrip("+-").isdigit()


def _label_name(value) -> str:
    if _is_int_like(value):
        return str(int(float(str(value).strip())))
    return str(value).strip()


def class_order(values: Iterable, where: str = "labels") -> list:
    """Sorted class names of ``values``: numerically when every value is an integer, else as strings.

    Raises InputError when there are fewer than two classes.
    """
    uniq = {_label_name(v) for v in values}
    if not uniq:
        raise InputError(f"{where}: no labeled records")
    if all(_is_int_like(v) for v in uniq):
        order = sorted(uniq, key=lambda s: int(s))
    else:
        order = sorted(uniq)
    if len(order) < 2:
        raise InputError(f"{where}: only one class ({order[0]!r}); a classification task needs at least two")
    return order


def map_labels(values: Sequence, classes: Sequence[str], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        name = _label_name(v)
        if name not in index:
            raise InputError(f"{where}: label {name!r} is not one of the classes {list(classes)}")
        out[i] = index[name]
    return out


# ----------------------------------------------------------------------------------------- encoding
def encode_sequences(seqs: Sequence[str], where: str = "sequences", max_length: Optional[int] = None,
                     row_names: Optional[Sequence[str]] = None):
    """Tokenize all sequences in one vectorized pass.

    Returns ``(ids (N, L) uint8 right-padded with [PAD], lengths (N,) int32, n_truncated, n_ambiguous)``.
    ``max_length``: truncate longer sequences (keep the first ``max_length`` bases); None: the longest.
    Empty sequences and non-IUPAC characters raise InputError naming ``where`` and the row.
    """
    def row_label(i: int) -> str:
        return row_names[i] if row_names is not None else f"record {i + 1}"

    n = len(seqs)
    if n == 0:
        raise InputError(f"{where}: no sequences")
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise InputError(f"{where} {row_label(int(empty[0]))}: empty sequence")
    joined = "".join(seqs)
    try:
        buf = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        pos = exc.start
        row = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
        raise InputError(f"{where} {row_label(row)}: non-DNA character {joined[pos]!r}") from None
    tok = BYTE_TO_ID[buf]
    bad = np.flatnonzero(tok == INVALID)
    if bad.size:
        pos = int(bad[0])
        row = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
        col = pos - int(np.cumsum(lengths)[row - 1] if row else 0)
        raise InputError(f"{where} {row_label(row)}: non-DNA character {describe_byte(int(buf[pos]))} at position "
                         f"{col + 1} (allowed: IUPAC nucleotide letters ACGTURYSWKMBDHVN)")
    n_amb = int(AMBIGUOUS_BYTES[buf].sum())
    L = int(lengths.max())
    n_trunc = 0
    if max_length is not None and L > int(max_length):
        n_trunc = int((lengths > int(max_length)).sum())
        L = int(max_length)
    ids = np.full((n, L), PAD_ID, dtype=np.uint8)
    if n_trunc == 0:
        mask = np.arange(L)[None, :] < lengths[:, None]
        ids[mask] = tok
    else:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        keep = np.minimum(lengths, L)
        for i in range(n):
            ids[i, :keep[i]] = tok[starts[i]:starts[i] + keep[i]]
        lengths = keep
    return ids, lengths.astype(np.int32), n_trunc, n_amb


def make_set(seqs: Sequence[str], labels: np.ndarray, classes: list, where: str, max_length=None,
             row_names=None) -> LabeledSet:
    ids, lengths, n_trunc, n_amb = encode_sequences(seqs, where, max_length, row_names)
    return LabeledSet(ids, lengths, labels, list(classes), where, n_trunc, n_amb)


# ----------------------------------------------------------------------------------------- tables
def _read_frame(path: Path, sep: Optional[str] = None):
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if base.endswith((".parquet", ".pq")):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            try:
                import fastparquet  # noqa: F401
            except ImportError:
                raise InputError(f"{path}: reading parquet needs pyarrow (pip install pyarrow) or fastparquet") \
                    from None
        try:
            return pd.read_parquet(path)
        except Exception as exc:
            raise InputError(f"{path}: cannot read parquet ({' '.join(str(exc).split())})") from None
    if sep is None:
        if base.endswith(".tsv"):
            sep = "\t"
        elif base.endswith(".csv"):
            sep = ","
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt") as fh:
                head = fh.readline()
            sep = "\t" if head.count("\t") > head.count(",") else ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, compression="infer")
    except Exception as exc:
        raise InputError(f"{path}: cannot read table ({' '.join(str(exc).split())})") from None


def _pick(columns, wanted: Optional[str], candidates, path: Path, what: str) -> str:
    cols = list(columns)
    if wanted:
        if wanted not in cols:
            raise InputError(f"{path}: missing {what} column '{wanted}' (columns: {', '.join(map(str, cols))})")
        return wanted
    for c in candidates:
        if c in cols:
            return c
    raise InputError(f"{path}: missing {what} column (looked for {', '.join(candidates)}; "
                     f"columns: {', '.join(map(str, cols))}); set data.{what}_column")


def read_table(path, seq_column=None, label_column=None, where: Optional[dict] = None, sep=None):
    """Read (sequences, raw label values, row names) from a CSV/TSV/parquet file."""
    path = Path(path)
    frame = _read_frame(path, sep)
    scol = _pick(frame.columns, seq_column, SEQ_COLUMNS, path, "seq")
    lcol = _pick(frame.columns, label_column, LABEL_COLUMNS, path, "label")
    rows = np.arange(len(frame))
    if where:
        for key, value in dict(where).items():
            if key not in frame.columns:
                raise InputError(f"{path}: data.where column '{key}' not found")
            keep = frame[key].astype(str).values == str(value)
            frame = frame[keep]
            rows = rows[keep]
        if len(frame) == 0:
            raise InputError(f"{path}: no rows match data.where={dict(where)}")
    if len(frame) == 0:
        raise InputError(f"{path}: no records")
    seqs = [str(s).strip() for s in frame[scol].tolist()]
    labels = [str(v).strip() for v in frame[lcol].tolist()]
    header_lines = 0 if path.name.lower().endswith((".parquet", ".pq", ".parquet.gz")) else 1
    names = [f"row {r + 1 + header_lines}" if header_lines else f"row {r}" for r in rows]
    for i, v in enumerate(labels):
        if v == "":
            raise InputError(f"{path} {names[i]}: empty label")
    return seqs, labels, names


def load_table(path, seq_column=None, label_column=None, where=None, max_length=None, classes=None,
               name: Optional[str] = None) -> BenchmarkData:
    """One table file -> BenchmarkData with a single split ``all``."""
    seqs, raw, names = read_table(path, seq_column, label_column, where)
    classes = classes or class_order(raw, str(path))
    labels = map_labels(raw, classes, str(path))
    s = make_set(seqs, labels, classes, str(path), max_length, names)
    return BenchmarkData(name or _stem(Path(path)), {"all": s}, classes, str(path))


def _stem(path: Path) -> str:
    name = path.name
    for suf in (".gz",) + TABLE_SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    return name


def load_split_folder(folder, seq_column=None, label_column=None, where=None, max_length=None) -> BenchmarkData:
    """A folder of split tables (``train.csv[.gz]``, ``dev.csv``, ``test.csv``; GUE style) with one class map."""
    folder = Path(folder)
    found = {}
    for p in sorted(folder.iterdir()):
        stem = _stem(p).lower()
        if p.is_file() and stem in SPLIT_NAMES and p.name.lower() != stem:
            found.setdefault(stem, p)
    if not found:
        raise InputError(f"{folder}: no split tables (train/dev/test .csv/.tsv/.parquet) found")
    raw = {k: read_table(p, seq_column, label_column, where) for k, p in found.items()}
    classes = class_order([v for _, labels, _ in raw.values() for v in labels], str(folder))
    splits = {}
    for k, (seqs, labels, names) in raw.items():
        splits[k] = make_set(seqs, map_labels(labels, classes, str(found[k])), classes, str(found[k]),
                             max_length, names)
    return BenchmarkData(folder.name, splits, classes, str(folder))


# ----------------------------------------------------------------------------------------- GB folders
def _gb_split(split_dir: Path):
    """Sequences and class names of ``<split>/<class>/*.txt`` (sorted by class, then by file name)."""
    class_dirs = sorted((d for d in split_dir.iterdir() if d.is_dir()), key=lambda d: d.name)
    seqs, names, rows = [], [], []
    for d in class_dirs:
        files = sorted((f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")),
                       key=lambda f: f.name)
        for f in files:
            try:
                text = f.read_text(encoding="ascii")
            except (UnicodeDecodeError, OSError) as exc:
                raise InputError(f"{f}: cannot read sequence file ({type(exc).__name__})") from None
            lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(">")]
            seqs.append("".join(lines))
            names.append(d.name)
            rows.append(str(f))
    return seqs, names, rows


def is_gb_folder(root) -> bool:
    root = Path(root)
    split = next((root / s for s in ("train", "test") if (root / s).is_dir()), None)
    return split is not None and any(d.is_dir() for d in split.iterdir())


def load_gb_folder(root, max_length=None) -> BenchmarkData:
    """Genomic Benchmarks materialized layout ``root/{train,test}/<class>/*.txt``.

    Class ids come from the sorted union of class folder names over the splits (never from directory
    listing order), so ``negative`` -> 0 and ``positive`` -> 1.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    splits_raw = {}
    for split in ("train", "test"):
        d = root / split
        if d.is_dir():
            splits_raw[split] = _gb_split(d)
    if not splits_raw:
        raise InputError(f"{root}: expected the Genomic Benchmarks layout <name>/{{train,test}}/<class>/*.txt")
    classes = class_order([c for _, names, _ in splits_raw.values() for c in names], str(root))
    splits = {}
    for split, (seqs, names, rows) in splits_raw.items():
        if not seqs:
            raise InputError(f"{root / split}: no sequence files")
        labels = map_labels(names, classes, str(root / split))
        ids, lengths, nt, na = encode_sequences(seqs, str(root / split), max_length,
                                                [f"file {os.path.basename(r)}" for r in rows])
        splits[split] = LabeledSet(ids, lengths, labels, classes, str(root / split), nt, na)
    return BenchmarkData(root.name, splits, classes, str(root))
