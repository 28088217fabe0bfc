"""Text classification tasks for the benchmark (GLUE style): one sentence or a sentence pair per record.

``genodiff benchmark <task> data.kind=text``: the records are tokenized ONCE with a text tokenizer into the same
:class:`~genodiff.benchmarks.datasets.LabeledSet` the DNA tasks use (``kind="text"``, ids int32 right-padded with
the tokenizer's ``[PAD]``), so folds, the paper protocol, the neural methods and the report are shared. Sources:

* a table (CSV / TSV / JSONL / parquet, optionally gzip) with one or two text columns and a label column, or a
  folder of split tables (``train.tsv``, ``dev.tsv``, ``test.tsv``: the GLUE layout);
* ``hf:<dataset>[:<config>]`` (``hf:nyu-mll/glue:sst2``, ``hf:glue:mrpc``, ``hf:fancyzhx/ag_news``): a Hugging Face dataset by
  name through the ``datasets`` library (local cache, or the Hub when reachable). Splits whose labels are
  all hidden (GLUE's test, label -1) are dropped; the official validation split then serves as the test split.

Columns (``data.text_columns``, default: the first present of :data:`PAIR_COLUMNS`, else of :data:`TEXT_COLUMNS`).
Encoding (:func:`encode_texts`): ``[BOS] a [EOS]`` or ``[BOS] a [EOS] b [EOS]`` -- BERT's ``[CLS] a [SEP] b [SEP]``
with a BERT tokenizer, whose ``[CLS]``/``[SEP]`` are its BOS/EOS (``genodiff.data.text.tokenizers``);
``data.max_length`` truncates the longer text first (the ``longest_first`` strategy of ``transformers``).

Tokenizer (:func:`resolve_text_tokenizer`, ``data.tokenizer``): ``auto`` is the backbone's own -- the
``tokenizer/`` of a genodiff export in ``model.init``, else the tokenizer of ``model.pretrained`` for
``model=hf_mlm``, else UTF-8 bytes; or any spec of :func:`~genodiff.data.text.tokenizers.load_tokenizer`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from genodiff.benchmarks.datasets import SPLIT_NAMES, BenchmarkData, LabeledSet, _pick, _stem, class_order, map_labels
from genodiff.data.hub import hub_reachable
from genodiff.data.text.tokenizers import TextTokenizer, load_tokenizer
from genodiff.errors import InputError
from genodiff.interop.hf_mlm import load_hf_tokenizer

__all__ = ["TEXT_COLUMNS", "PAIR_COLUMNS", "LABEL_COLUMNS", "encode_texts", "load_text_task", "resolve_text_tokenizer",
           "read_text_table"]

#: single-text columns, first match wins (GLUE SST-2/CoLA ``sentence``; AG News ``text``; DNA tables ``sequence``)
TEXT_COLUMNS = ("sentence", "text", "sequence", "seq", "content", "review", "question")
#: sentence-pair columns (GLUE: MRPC/RTE/WNLI/STS-B, QNLI, QQP, MNLI; SuperGLUE-style ``text_a``/``text_b``)
PAIR_COLUMNS = (("sentence1", "sentence2"), ("question", "sentence"), ("question1", "question2"),
                ("premise", "hypothesis"), ("text_a", "text_b"))
LABEL_COLUMNS = ("label", "labels", "Label", "class", "y", "target", "Quality")


# ------------------------------------------------------------------------------------------- encoding
def encode_texts(tokenizer: TextTokenizer, first: Sequence[str], second: Optional[Sequence[str]] = None,
                 max_length: Optional[int] = None, where: str = "texts") -> tuple:
    """Tokenize records once: ``[BOS] a [EOS]`` or ``[BOS] a [EOS] b [EOS]``.

    Returns ``(ids (N, L) int32 right-padded with [PAD], lengths (N,) int32, n_truncated)``; ``max_length``
    (tokens, specials included) truncates the longer of the two texts first, one token at a time."""
    n = len(first)
    if n == 0:
        raise InputError(f"{where}: no records")
    a = tokenizer.encode_batch(list(first))
    b = tokenizer.encode_batch(list(second)) if second is not None else None
    specials = 3 if b is not None else 2
    if max_length is not None and int(max_length) < specials + (2 if b is not None else 1):
        raise InputError(f"data.max_length={max_length}: too short for {specials} special tokens and the text")
    rows, n_trunc = [], 0
    for i in range(n):
        x, y = list(a[i]), (list(b[i]) if b is not None else None)
        if not x and not y:
            raise InputError(f"{where} record {i + 1}: empty text")
        if max_length is not None:
            budget = int(max_length) - specials
            if len(x) + (len(y) if y is not None else 0) > budget:
                n_trunc += 1
                if y is None:
                    x = x[:budget]
                else:  # longest first
                    while len(x) + len(y) > budget:
                        if len(x) >= len(y):
                            x.pop()
                        else:
                            y.pop()
        row = [tokenizer.bos_id, *x, tokenizer.eos_id]
        if y is not None:
            row += [*y, tokenizer.eos_id]
        rows.append(row)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=n)
    ids = np.full((n, int(lengths.max())), tokenizer.pad_id, dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids, lengths, n_trunc


# ------------------------------------------------------------------------------------------- tables
def _read_text_frame(path: Path) -> pd.DataFrame:
    """A table of strings: TSV without quoting (GLUE files hold bare quotes), CSV, JSONL or parquet."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    base = path.name.lower().removesuffix(".gz")
    try:
        if base.endswith((".jsonl", ".json")):
            return pd.read_json(path, lines=True, dtype=False).astype(str)
        if base.endswith((".parquet", ".pq")):
            return pd.read_parquet(path).astype(str)
        sep = "\t" if base.endswith(".tsv") else "," if base.endswith(".csv") else None
        if sep is None:
            with open(path, "rb") as fh:
                head = fh.readline()
            sep = "\t" if head.count(b"\t") > head.count(b",") else ","
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=quoting, compression="infer")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  (pandas raises many kinds)
        raise InputError(f"{path}: cannot read table ({' '.join(str(exc).split())})") from None


def _text_columns(columns, wanted, path) -> list:
    cols = [str(c) for c in columns]
    if wanted:
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        if not 1 <= len(wanted) <= 2:
            raise InputError(f"data.text_columns: one or two column names, got {wanted}")
        for c in wanted:
            if c not in cols:
                raise InputError(f"{path}: missing text column '{c}' (columns: {', '.join(cols)})")
        return wanted
    for pair in PAIR_COLUMNS:
        if all(c in cols for c in pair):
            return list(pair)
    for c in TEXT_COLUMNS:
        if c in cols:
            return [c]
    raise InputError(f"{path}: no text column (looked for {', '.join(TEXT_COLUMNS)} and the pairs "
                     f"{', '.join('+'.join(p) for p in PAIR_COLUMNS)}; columns: {', '.join(cols)}); set data.text_columns")


def read_text_table(path, text_columns=None, label_column=None, where: Optional[dict] = None) -> tuple:
    """``(texts: list of 1 or 2 lists of str, raw labels, row names, column names)`` of one table."""
    path = Path(path)
    frame = _read_text_frame(path)
    return _from_frame(frame, str(path), text_columns, label_column, where,
                       header=not path.name.lower().removesuffix(".gz").endswith((".parquet", ".pq", ".jsonl", ".json")))


def _from_frame(frame: pd.DataFrame, name: str, text_columns, label_column, where, header: bool = True) -> tuple:
    cols = _text_columns(frame.columns, text_columns, name)
    lcol = _pick(frame.columns, label_column, LABEL_COLUMNS, name, "label")
    rows = np.arange(len(frame))
    for key, value in dict(where or {}).items():
        if key not in frame.columns:
            raise InputError(f"{name}: data.where column '{key}' not found")
        keep = frame[key].astype(str).values == str(value)
        frame, rows = frame[keep], rows[keep]
    if len(frame) == 0:
        raise InputError(f"{name}: no records" + (f" match data.where={dict(where)}" if where else ""))
    texts = [[str(s) for s in frame[c].tolist()] for c in cols]
    labels = [str(v).strip() for v in frame[lcol].tolist()]
    names = [f"row {r + 2}" if header else f"record {r + 1}" for r in rows]
    for i, v in enumerate(labels):
        if v == "":
            raise InputError(f"{name} {names[i]}: empty label")
    return texts, labels, names, cols


def _make_set(texts, labels, classes, tokenizer, where, max_length) -> LabeledSet:
    ids, lengths, n_trunc = encode_texts(tokenizer, texts[0], texts[1] if len(texts) > 1 else None, max_length, where)
    return LabeledSet(ids, lengths, map_labels(labels, classes, where), list(classes), where, n_trunc, 0, kind="text")


def _build(name: str, source: str, raw: dict, tokenizer, max_length, notes=()) -> BenchmarkData:
    """BenchmarkData from ``{split: (texts, labels, where)}`` with one class map over every split."""
    classes = class_order([v for _, labels, _ in raw.values() for v in labels], source)
    splits = {k: _make_set(texts, labels, classes, tokenizer, where, max_length)
              for k, (texts, labels, where) in raw.items()}
    data = BenchmarkData(name, splits, classes, source, list(notes))
    return data


# ------------------------------------------------------------------------------------------- sources
def _hf_task(spec: str, tokenizer, text_columns, label_column, where, max_length) -> BenchmarkData:
    """``hf:<dataset>[:<config>]`` through the ``datasets`` library."""
    name = spec[3:]
    dataset, _, config = name.partition(":")
    try:
        import datasets  # noqa: PLC0415  (optional)
    except ModuleNotFoundError:
        raise InputError(f"task '{spec}': the 'datasets' package is not installed (pip install datasets), or use a "
                         "local CSV/TSV/JSONL file") from None
    try:
        loaded = datasets.load_dataset(dataset, config or None)
    except Exception as exc:  # noqa: BLE001
        reason = ("the Hugging Face Hub is unreachable (offline) and the dataset is not in the local cache"
                  if not hub_reachable() else f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        raise InputError(f"task '{spec}': {reason}; use a local CSV/TSV/JSONL file") from None
    raw, notes = {}, []
    renamed = {"validation": "dev", "validation_matched": "dev"}
    for split_name, part in loaded.items():
        frame = part.to_pandas()
        texts, labels, _, _ = _from_frame(frame, f"{spec}:{split_name}", text_columns, label_column, where,
                                           header=False)
        if all(v.lstrip("-").isdigit() and int(v) < 0 for v in labels):
            notes.append(f"split '{split_name}' dropped: its labels are hidden (-1)")
            continue
        raw[renamed.get(split_name, split_name)] = (texts, labels, f"{spec}:{split_name}")
    if "test" not in raw and "dev" in raw and "train" in raw:
        raw["test"] = raw.pop("dev")
        notes.append("the official validation split is the test split (the test labels are hidden)")
    return _build(name.replace("/", "_").replace(":", "_"), spec, raw, tokenizer, max_length, notes)


def load_text_task(task: str, data_cfg: dict, tokenizer: TextTokenizer) -> BenchmarkData:
    """``task`` (a table, a folder of split tables or ``hf:<dataset>[:<config>]``) tokenized with ``tokenizer``.

    ``data_cfg`` keys used: ``text_columns``, ``label_column``, ``where``, ``max_length`` (tokens)."""
    cols = dict(text_columns=data_cfg.get("text_columns"), label_column=data_cfg.get("label_column"),
                where=data_cfg.get("where"))
    max_length = data_cfg.get("max_length")
    if task.startswith("hf:"):
        return _hf_task(task, tokenizer, max_length=max_length, **cols)
    path = Path(task).expanduser()
    if path.is_dir():
        found = {}
        for p in sorted(path.iterdir()):
            stem = _stem(p).lower().removesuffix(".jsonl").removesuffix(".json")
            if p.is_file() and stem in SPLIT_NAMES:
                found.setdefault(stem, p)
        if not found:
            raise InputError(f"{path}: no split tables (train/dev/test .tsv/.csv/.jsonl/.parquet) found")
        raw = {}
        for split, p in found.items():
            texts, labels, _, _ = read_text_table(p, **cols)
            raw[split] = (texts, labels, str(p))
        return _build(path.name, str(path), raw, tokenizer, max_length)
    if path.is_file():
        texts, labels, _, _ = read_text_table(path, **cols)
        return _build(_stem(path).removesuffix(".jsonl"), str(path), {"all": (texts, labels, str(path))}, tokenizer,
                      max_length)
    raise InputError(f"task '{task}': no such file or folder (text tasks: a CSV/TSV/JSONL table, a folder of split "
                     "tables or hf:<dataset>[:<config>])")


# ------------------------------------------------------------------------------------------- tokenizer
def _export_tokenizer(init: str) -> Optional[Path]:
    folder = Path(init) / "tokenizer"
    return folder if folder.is_dir() else None


def resolve_text_tokenizer(spec, model_name: Optional[str], model_config: dict, inits: Sequence) -> TextTokenizer:
    """The tokenizer of a text task (see the module docstring): ``spec`` ``auto``/None picks the backbone's own.

    Every pretrained export in ``inits`` must use that tokenizer (one task is tokenized once)."""
    exports = [Path(str(i)) for i in inits if i not in (None, "", "random", "pretrained", "none")]
    if spec not in (None, "", "auto"):
        tok = load_tokenizer(spec)
    else:
        own = next((t for t in map(_export_tokenizer, exports) if t is not None), None)
        if own is not None:
            tok = load_tokenizer(own)
        elif model_name == "hf_mlm" and model_config.get("pretrained"):
            tok = load_hf_tokenizer(model_config["pretrained"], bool(model_config.get("trust_remote_code", False)),
                                    model_config.get("revision"))
        else:
            tok = load_tokenizer("byte")
    for export in exports:
        theirs = _export_tokenizer(export)
        if theirs is not None and load_tokenizer(theirs).fingerprint() != tok.fingerprint():
            raise InputError(f"model.init={export}: its tokenizer ({theirs}) is not the task's tokenizer "
                             f"({tok.name}); set data.tokenizer or compare models trained on one tokenizer")
    return tok
