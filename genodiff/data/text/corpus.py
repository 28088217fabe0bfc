"""Text corpora: documents from local files, Hugging Face datasets, a synthetic Markov source or the Python
standard library's docstrings; train/valid/test splits; tokenized splits cached as memory-mapped arrays.

Sources (``source`` of :class:`TextSourceConfig`):

* ``local`` -- ``text_files``: files, folders (every ``*.txt``, ``*.md``, ``*.jsonl``, ``*.json`` inside,
  sorted) or glob patterns. A ``.txt``/``.md`` file is one document, or one document per non-empty line
  with ``line_documents: true`` (LM1B style); a ``.jsonl`` file has one document per line in field
  ``jsonl_field`` (default ``text``). ``.gz`` files are read transparently.
* ``hf`` -- ``hf_dataset`` (``wikitext-103``, ``lm1b``, ``openwebtext`` or any Hub dataset name) through
  the ``datasets`` library when installed and online; otherwise one-line :class:`InputError`.
* ``synthetic`` -- an order-k Markov chain over a small alphabet with a known entropy rate
  (:class:`MarkovTextSource`), for checking that a trained model's NELBO approaches the true entropy.
* ``python_docs`` -- the docstrings of the running Python's standard library (PSF licence): real English
  technical prose that exists on every machine with Python, with no download.

Splits: the last ``test_fraction`` of the documents are test and the ``valid_fraction`` before them valid
(``split_unit: document``); with fewer than ``min_documents_for_split`` documents (one long book) the split
is by characters at the tail of the concatenated text instead (``tail``). Sources with an official split
(Hugging Face datasets) keep it.

Cache: :func:`build_token_cache` writes, per split, ``<split>.tokens.npy`` (all documents' token ids
back to back, uint16 when V <= 65536, else int32) and ``<split>.offsets.npy`` (int64 document starts,
n_docs + 1 entries) into ``<cache>/text/<fingerprint>/``, atomically; the fingerprint covers the
sources (paths, sizes, mtimes), the tokenizer and the split options, so a second run memory-maps the
arrays without tokenizing again.
"""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from genodiff.data.files import install_folder
from genodiff.data.hub import hub_reachable
from genodiff.data.manifest import resolve_cache_dir
from genodiff.data.text.detokenize import detokenizer
from genodiff.errors import InputError

__all__ = [
    "TextSourceConfig",
    "MarkovTextSource",
    "expand_text_files",
    "read_documents",
    "load_documents",
    "python_docs_documents",
    "build_token_cache",
    "TokenCache",
    "HF_ALIASES",
]

CACHE_VERSION = 1
SPLITS = ("train", "valid", "test")
TEXT_SUFFIXES = (".txt", ".md", ".text", ".jsonl", ".json", ".rst")

#: friendly names of the MDLM paper's corpora -> (Hub dataset, config, split map)
HF_ALIASES: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "wikitext-103": ("Salesforce/wikitext", "wikitext-103-raw-v1", {"train": "train", "valid": "validation", "test": "test"}),
    "wikitext-2": ("Salesforce/wikitext", "wikitext-2-raw-v1", {"train": "train", "valid": "validation", "test": "test"}),
    "lm1b": ("dvruette/lm1b", None, {"train": "train", "valid": "test", "test": "test"}),
    "openwebtext": ("Skylion007/openwebtext", None, {"train": "train"}),
    # the zero-shot sets of MDLM's table 3 (test splits; genodiff evaluate sets=[ptb, lambada, ...])
    "ptb": ("ptb_text_only", None, {"train": "train", "valid": "validation", "test": "test"}),
    "lambada": ("EleutherAI/lambada_openai", "default", {"test": "test"}),
    "ag_news": ("fancyzhx/ag_news", None, {"test": "test"}),
    "pubmed": ("armanc/scientific_papers", "pubmed", {"test": "test"}),
    "arxiv": ("armanc/scientific_papers", "arxiv", {"test": "test"}),
}


@dataclass
class TextSourceConfig:
    """Where the documents come from and how they are split (see the module docstring)."""

    source: str = "local"
    text_files: list = field(default_factory=list)
    jsonl_field: str = "text"
    line_documents: bool = False
    hf_dataset: str | None = None
    hf_config: str | None = None
    hf_max_documents: int | None = None
    synthetic: dict = field(default_factory=dict)
    python_docs_min_chars: int = 200
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    min_documents_for_split: int = 20
    detokenizer: str | None = None  # none | ptb | wikitext | lm1b | lambada | scientific_papers (data/text/detokenize.py)


# ------------------------------------------------------------------------------------ local files
def expand_text_files(specs: Sequence[str | os.PathLike] | str) -> list[Path]:
    """Files from paths, folders (recursively, sorted) and glob patterns; InputError when none exist."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out: list[Path] = []
    for spec in specs:
        spec = str(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.name.lower().removesuffix(".gz").endswith(TEXT_SUFFIXES))
            if not found:
                raise InputError(f"data.text_files: folder {path} holds no .txt/.md/.jsonl files")
            out += found
        elif path.is_file():
            out.append(path)
        elif any(c in spec for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"data.text_files: pattern '{spec}' matches no file")
            out += matches
        else:
            raise InputError(f"data.text_files: file not found: {path}")
    return out


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_documents(path: str | os.PathLike, jsonl_field: str = "text", line_documents: bool = False) -> Iterator[str]:
    """Documents of one file: JSONL records' ``jsonl_field``, or the whole text / its non-empty lines."""
    path = Path(path)
    base = path.name.lower().removesuffix(".gz")
    with _open_text(path) as handle:
        if base.endswith(".jsonl") or base.endswith(".json") and _looks_jsonl(path):
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or jsonl_field not in record:
                    raise InputError(f"{path} line {number}: no field '{jsonl_field}' (set data.jsonl_field)")
                text = record[jsonl_field]
                if not isinstance(text, str):
                    raise InputError(f"{path} line {number}: field '{jsonl_field}' is not a string")
                if text:
                    yield text
        elif line_documents:
            for line in handle:
                line = line.rstrip("\n")
                if line.strip():
                    yield line
        else:
            text = handle.read()
            if text.strip():
                yield text


def _looks_jsonl(path: Path) -> bool:
    with _open_text(path) as handle:
        first = handle.readline().strip()
    return first.startswith("{") and first.endswith("}")


# ---------------------------------------------------------------------------------- synthetic text
class MarkovTextSource:
    """An order-``order`` Markov chain over ``alphabet`` with Dirichlet(``concentration``) transitions.

    Deterministic from ``seed``. ``entropy_rate()`` is the exact entropy rate in nats/symbol;
    ``block_entropy(L)`` the exact entropy of L consecutive symbols from the stationary chain (nats), so
    ``block_entropy(L) / L`` is the best achievable nats/token on chunks of L symbols cut from the stream.
    """

    def __init__(self, alphabet: str = "abcd", order: int = 2, concentration: float = 0.3, seed: int = 0):
        if order < 1 or len(alphabet) < 2 or len(set(alphabet)) != len(alphabet):
            raise InputError("data.synthetic: need order >= 1 and an alphabet of >= 2 distinct symbols")
        self.alphabet, self.order, self.seed = alphabet, int(order), int(seed)
        k = len(alphabet)
        rng = np.random.default_rng([seed, 2024])
        self.transitions = rng.dirichlet(np.full(k, float(concentration)), size=k ** order)  # (k^order, k)
        self.transitions = np.clip(self.transitions, 1e-6, None)
        self.transitions /= self.transitions.sum(1, keepdims=True)
        # stationary distribution over states (the last `order` symbols)
        n = k ** order
        P = np.zeros((n, n))
        for s in range(n):
            for c in range(k):
                P[s, (s * k + c) % n] += self.transitions[s, c]
        evals, evecs = np.linalg.eig(P.T)
        pi = np.real(evecs[:, np.argmin(np.abs(evals - 1.0))])
        self.stationary = np.abs(pi) / np.abs(pi).sum()

    def entropy_rate(self) -> float:
        h = -(self.transitions * np.log(self.transitions)).sum(1)
        return float((self.stationary * h).sum())

    def unigram_entropy(self) -> float:
        """Entropy (nats) of one symbol's stationary marginal: what a model without context can reach."""
        k = len(self.alphabet)
        marg = self.stationary.reshape((k,) * self.order).sum(axis=tuple(range(1, self.order)))
        return float(-(marg * np.log(marg)).sum())

    def block_entropy(self, length: int) -> float:
        """H(X_1..X_L) in nats for the stationary chain: H(first `order` symbols) + (L - order) * rate."""
        if length <= self.order:  # marginal of the first `length` symbols of a stationary state
            k = len(self.alphabet)
            marg = self.stationary.reshape((k,) * self.order).sum(axis=tuple(range(length, self.order)))
            marg = marg.ravel()
            return float(-(marg * np.log(marg)).sum())
        return float(-(self.stationary * np.log(self.stationary)).sum()) + (length - self.order) * self.entropy_rate()

    def sample(self, num_symbols: int, seed: int) -> str:
        rng = np.random.default_rng([self.seed, seed])
        k, n = len(self.alphabet), len(self.stationary)
        state = int(rng.choice(n, p=self.stationary))
        cdf = np.cumsum(self.transitions, 1)
        u = rng.random(num_symbols)
        out = np.empty(num_symbols, dtype=np.int64)
        for i in range(num_symbols):
            c = min(int(np.searchsorted(cdf[state], u[i], side="right")), k - 1)
            out[i] = c
            state = (state * k + c) % n
        return "".join(np.array(list(self.alphabet))[out])

    @classmethod
    def from_config(cls, spec: dict) -> "MarkovTextSource":
        spec = dict(spec or {})
        known = {"alphabet", "order", "concentration", "seed"}
        return cls(**{k: v for k, v in spec.items() if k in known})


def _synthetic_documents(spec: dict) -> dict[str, list[str]]:
    source = MarkovTextSource.from_config(spec)
    sizes = {"train": int(spec.get("train_symbols", 200_000)), "valid": int(spec.get("valid_symbols", 20_000)),
             "test": int(spec.get("test_symbols", 20_000))}
    return {split: [source.sample(n, seed=i + 1)] if n > 0 else [] for i, (split, n) in enumerate(sizes.items())}


# ----------------------------------------------------------------------------------- python docs
def python_docs_documents(min_chars: int = 200) -> list[str]:
    """Docstrings (modules, classes, functions) of the running Python's standard library, sorted by file.

    Real English technical prose under the PSF licence, present wherever Python is; test packages,
    ``idlelib``, ``lib2to3`` and ``site-packages`` are skipped. Indentation inside a docstring is removed
    (``ast.get_docstring`` cleans it)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    skip = {"test", "tests", "site-packages", "dist-packages", "idlelib", "lib2to3", "__pycache__", "turtledemo"}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in skip or p.startswith("test") for p in parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    docs.append(doc)
    if not docs:
        raise InputError(f"data.source=python_docs: no docstrings found under {root}")
    return docs


# -------------------------------------------------------------------------------- hugging face
def _hf_documents(cfg: TextSourceConfig) -> dict[str, list[str]]:
    name = cfg.hf_dataset
    if not name:
        raise InputError("data.hf_dataset: not set (wikitext-103, lm1b, openwebtext or a Hub dataset name)")
    repo, config, split_map = HF_ALIASES.get(name, (name, cfg.hf_config, {"train": "train", "valid": "validation",
                                                                          "test": "test"}))
    config = cfg.hf_config or config
    try:
        import datasets  # noqa: PLC0415
    except ModuleNotFoundError:
        raise InputError(f"data.hf_dataset '{name}': the 'datasets' package is not installed "
                         "(pip install datasets), or use data.text_files with local files") from None
    offline = not hub_reachable()
    out: dict[str, list[str]] = {}
    for split, hf_split in split_map.items():
        try:
            with _datasets_offline(datasets, offline):
                ds = datasets.load_dataset(repo, config, split=hf_split)
        except Exception as exc:
            if offline:
                raise InputError(f"data.hf_dataset '{name}': the Hugging Face Hub is unreachable (offline) and the "
                                 "dataset is not in the local cache; use data.text_files with local files") from None
            raise InputError(f"data.hf_dataset '{name}': {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        column = cfg.jsonl_field if cfg.jsonl_field in ds.column_names else ds.column_names[0]
        texts = ds[column] if cfg.hf_max_documents is None else ds.select(range(min(len(ds), cfg.hf_max_documents)))[column]
        out[split] = [t for t in texts if t and t.strip()]
    if "test" not in out and "train" in out:  # e.g. openwebtext has only train: split its tail
        docs = out.pop("train")
        out = _split_documents(docs, cfg)
    return {split: out.get(split, []) for split in SPLITS}  # a test-only set (lambada) has empty train/valid


class _datasets_offline:
    """Within the block, ``datasets`` / ``huggingface_hub`` use only their local caches (no retry loops)."""

    def __init__(self, datasets_module, offline: bool):
        self.modules, self.offline, self.saved = [], offline, []
        if offline:
            self.modules.append((getattr(datasets_module, "config", None), "HF_DATASETS_OFFLINE"))
            self.modules.append((getattr(datasets_module, "config", None), "HF_HUB_OFFLINE"))
            try:
                import huggingface_hub.constants as hub_constants

                self.modules.append((hub_constants, "HF_HUB_OFFLINE"))
            except ModuleNotFoundError:
                pass

    def __enter__(self):
        for module, name in self.modules:
            if module is not None and hasattr(module, name):
                self.saved.append((module, name, getattr(module, name)))
                setattr(module, name, True)
        return self

    def __exit__(self, *exc):
        for module, name, value in self.saved:
            setattr(module, name, value)
        return False


# ---------------------------------------------------------------------------------------- splits
def _split_documents(docs: list[str], cfg: TextSourceConfig) -> dict[str, list[str]]:
    if not docs:
        raise InputError("data: the text source holds no documents")
    if cfg.valid_fraction < 0 or cfg.test_fraction < 0 or cfg.valid_fraction + cfg.test_fraction >= 1:
        raise InputError("data: need valid_fraction, test_fraction >= 0 with a sum below 1")
    if len(docs) >= cfg.min_documents_for_split:
        n = len(docs)
        n_test = int(math.ceil(n * cfg.test_fraction)) if cfg.test_fraction else 0
        n_valid = int(math.ceil(n * cfg.valid_fraction)) if cfg.valid_fraction else 0
        return {"train": docs[: n - n_test - n_valid], "valid": docs[n - n_test - n_valid: n - n_test],
                "test": docs[n - n_test:]}
    text = "\n\n".join(docs)
    n = len(text)

    def cut(pos: int) -> int:  # move to the next whitespace so words stay whole
        nxt = text.find(" ", pos)
        return n if nxt < 0 else nxt

    test_start = cut(int(n * (1 - cfg.test_fraction))) if cfg.test_fraction else n
    valid_start = cut(int(n * (1 - cfg.test_fraction - cfg.valid_fraction))) if cfg.valid_fraction else test_start
    valid_start = min(valid_start, test_start)
    parts = {"train": text[:valid_start], "valid": text[valid_start:test_start], "test": text[test_start:]}
    return {k: [v.strip()] if v.strip() else [] for k, v in parts.items()}


def load_documents(cfg: TextSourceConfig) -> dict[str, list[str]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` documents of the configured source, each passed
    through ``cfg.detokenizer`` (:mod:`genodiff.data.text.detokenize`) when one is set."""
    undo = detokenizer(cfg.detokenizer)
    docs = _load_documents(cfg)
    return docs if undo is None else {split: [undo(d) for d in split_docs] for split, split_docs in docs.items()}


def _load_documents(cfg: TextSourceConfig) -> dict[str, list[str]]:
    if cfg.source == "local":
        files = expand_text_files(list(cfg.text_files or []) or _missing("data.text_files"))
        docs = [d for f in files for d in read_documents(f, cfg.jsonl_field, cfg.line_documents)]
        return _split_documents(docs, cfg)
    if cfg.source == "python_docs":
        return _split_documents(python_docs_documents(cfg.python_docs_min_chars), cfg)
    if cfg.source == "synthetic":
        return _synthetic_documents(cfg.synthetic)
    if cfg.source == "hf":
        return _hf_documents(cfg)
    raise InputError(f"data.source: unknown text source '{cfg.source}' (local, hf, synthetic, python_docs)")


def _missing(key: str):
    raise InputError(f"{key}: not set (give files, folders or glob patterns)")


def source_fingerprint(cfg: TextSourceConfig) -> dict[str, Any]:
    """What identifies the source's content without reading it all (paths, sizes, mtimes; versions)."""
    info: dict[str, Any] = {k: v for k, v in asdict(cfg).items()}
    if info.get("detokenizer") in (None, "", "none"):  # caches made before detokenizers existed stay valid
        info.pop("detokenizer", None)
    if cfg.source == "local":
        info["files"] = [(str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime_ns))
                         for p in expand_text_files(list(cfg.text_files or []) or _missing("data.text_files"))]
    elif cfg.source == "python_docs":
        info["python"] = sys.version
        info["stdlib"] = sysconfig.get_paths()["stdlib"]
    return info


# ----------------------------------------------------------------------------------------- cache
@dataclass
class TokenCache:
    """Memory-mapped token arrays of one split: ``tokens`` (1-D) and ``offsets`` (n_docs + 1)."""

    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.offsets) - 1

    def document(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]: self.offsets[i + 1]]


def _cache_root(cache_dir: str | None) -> Path:
    return resolve_cache_dir(cache_dir) / "text"


def build_token_cache(cfg: TextSourceConfig, tokenizer, cache_dir: str | None = None,
                      progress=None) -> tuple[dict[str, TokenCache], Path, bool]:
    """Tokenize every split once into ``<cache>/text/<fingerprint>/``; returns (splits, folder, built).

    ``built`` is False when a current cache was reused (nothing tokenized)."""
    key = {"version": CACHE_VERSION, "source": source_fingerprint(cfg), "tokenizer": tokenizer.fingerprint(),
           "vocab_size": int(tokenizer.vocab_size)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    root = _cache_root(cache_dir)
    folder = root / digest
    built = False
    if not (folder / "meta.json").is_file():
        docs = load_documents(cfg)
        dtype = np.uint16 if tokenizer.vocab_size <= 65536 else np.int32
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=root))
        try:
            counts = {}
            for split in SPLITS:
                split_docs = docs.get(split, [])
                ids: list[np.ndarray] = []
                for start in range(0, len(split_docs), 1024):
                    for row in tokenizer.encode_batch(split_docs[start: start + 1024]):
                        ids.append(np.asarray(row, dtype=dtype))
                lengths = np.array([len(a) for a in ids], dtype=np.int64)
                offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
                tokens = np.concatenate(ids) if ids else np.zeros(0, dtype=dtype)
                np.save(tmp / f"{split}.tokens.npy", tokens)
                np.save(tmp / f"{split}.offsets.npy", offsets)
                counts[split] = {"documents": len(ids), "tokens": int(offsets[-1])}
                if progress is not None:
                    progress(split, counts[split])
            (tmp / "meta.json").write_text(json.dumps({"key": key, "counts": counts}, indent=2, default=str))
            install_folder(tmp, folder, keep_concurrent=lambda theirs: (theirs / "meta.json").is_file())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        built = True
    out = {split: TokenCache(np.load(folder / f"{split}.tokens.npy", mmap_mode="r"),
                             np.load(folder / f"{split}.offsets.npy")) for split in SPLITS}
    return out, folder, built
