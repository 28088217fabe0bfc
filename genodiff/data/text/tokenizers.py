"""Text tokenizers for the DiT / text path: a byte-level fallback, any Hugging Face tokenizer, trained BPE.

Every tokenizer here is a :class:`TextTokenizer`: ``encode(str) -> list[int]``, ``encode_batch``,
``decode(ids) -> str`` (special tokens dropped), ``vocab_size`` (V, including added tokens) and the ids
``bos_id``, ``eos_id``, ``pad_id``, ``mask_id``. The diffusion core needs a ``[MASK]`` token and the padded
mode needs a pad token: :func:`load_tokenizer` adds ``[MASK]`` (and ``[PAD]``, ``[BOS]``, ``[EOS]``) when a
tokenizer has none, at the end of its vocabulary, so the original ids are unchanged (GPT-2: 50257 tokens,
``<|endoftext|>`` 50256 is BOS and EOS, ``[MASK]`` 50257, ``[PAD]`` 50258, V = 50259).

Specs understood by :func:`load_tokenizer`:

* ``byte`` -- UTF-8 bytes 0..255, then ``[BOS]`` 256, ``[EOS]`` 257, ``[PAD]`` 258, ``[MASK]`` 259 (V = 260).
  Needs nothing installed; lossless for any text.
* a path to a ``tokenizer.json`` (Hugging Face ``tokenizers`` format) or to a folder holding one (a
  ``genodiff data tokenizer`` output, a Hugging Face model folder).
* a Hugging Face Hub name (``gpt2``, ``bert-base-uncased``): loaded from the local Hugging Face cache, or
  downloaded when the Hub is reachable; offline and not cached -> one-line :class:`InputError`.

:func:`train_bpe` trains a byte-level BPE on the user's files with the ``tokenizers`` library (specials
``[BOS]`` 0, ``[EOS]`` 1, ``[PAD]`` 2, ``[MASK]`` 3) and writes ``tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from genodiff.data.hub import hub_reachable
from genodiff.data.text.corpus import expand_text_files, read_documents
from genodiff.errors import InputError

__all__ = [
    "TextTokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "load_tokenizer",
    "train_bpe",
    "vocab_spec",
    "SPECIAL_TOKENS",
]

SPECIAL_TOKENS = ("[BOS]", "[EOS]", "[PAD]", "[MASK]")
_MASK_NAMES = ("[MASK]", "<mask>", "<|mask|>")
_PAD_NAMES = ("[PAD]", "<pad>", "<|pad|>")
_BOS_NAMES = ("[BOS]", "<s>", "<|begin_of_text|>", "<|endoftext|>", "[CLS]")
_EOS_NAMES = ("[EOS]", "</s>", "<|end_of_text|>", "<|endoftext|>", "[SEP]")


class TextTokenizer:
    """Interface shared by the tokenizers of this module (see the module docstring)."""

    name: str = "text"
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    mask_id: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    @property
    def special_ids(self) -> set[int]:
        return {self.bos_id, self.eos_id, self.pad_id, self.mask_id}

    def fingerprint(self) -> str:
        """A short hash identifying the tokenizer's behaviour (for data caches)."""
        raise NotImplementedError

    def spec(self) -> dict:
        """A JSON-able description from which :func:`load_tokenizer` rebuilds it (see :meth:`save`)."""
        raise NotImplementedError

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the tokenizer into ``folder`` (``text_tokenizer.json`` + ``tokenizer.json`` for HF ones)."""
        raise NotImplementedError


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes (0..255) plus ``[BOS]`` 256, ``[EOS]`` 257, ``[PAD]`` 258, ``[MASK]`` 259."""

    name = "byte"

    def __init__(self):
        self.bos_id, self.eos_id, self.pad_id, self.mask_id = 256, 257, 258, 259
        self.vocab_size = 260

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def fingerprint(self) -> str:
        return "byte-v1"

    def spec(self) -> dict:
        return {"kind": "byte"}

    def save(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "text_tokenizer.json").write_text(json.dumps(self.spec()))
        return folder


def _require_tokenizers():
    try:
        import tokenizers  # noqa: F401
    except ModuleNotFoundError:
        raise InputError("text tokenizer: the 'tokenizers' package is not installed "
                         "(pip install tokenizers, or use tokenizer=byte)") from None
    return tokenizers


class HFTokenizer(TextTokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` with guaranteed BOS/EOS/PAD/MASK ids (added when missing)."""

    def __init__(self, tokenizer, name: str = "hf"):
        self.tok = tokenizer
        self.name = name
        self.added: list[str] = []
        vocab = tokenizer.get_vocab(with_added_tokens=True)

        def find(names):
            for n in names:
                if n in vocab:
                    return vocab[n]
            return None

        wanted = {"mask": (_MASK_NAMES, "[MASK]"), "pad": (_PAD_NAMES, "[PAD]"), "bos": (_BOS_NAMES, "[BOS]"),
                  "eos": (_EOS_NAMES, "[EOS]")}
        ids = {}
        for key, (names, default) in wanted.items():
            found = find(names)
            if found is None:
                tokenizer.add_special_tokens([default])
                self.added.append(default)
                found = tokenizer.token_to_id(default)
                vocab = tokenizer.get_vocab(with_added_tokens=True)
            ids[key] = int(found)
        self.mask_id, self.pad_id, self.bos_id, self.eos_id = ids["mask"], ids["pad"], ids["bos"], ids["eos"]
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))
        # ids of every special / added token (never shown in decoded text)
        self._special = set(self.special_ids)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts):
        return [list(e.ids) for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) not in self._special], skip_special_tokens=True)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.tok.to_str().encode()).hexdigest()[:16]

    def spec(self) -> dict:
        return {"kind": "hf", "name": self.name}

    def save(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(folder / "tokenizer.json"))
        (folder / "text_tokenizer.json").write_text(json.dumps({"kind": "hf", "name": self.name,
                                                                "file": "tokenizer.json"}))
        return folder


# ----------------------------------------------------------------------------------------- loading
def _from_hub(name: str):
    """``tokenizers.Tokenizer`` for a Hub name: the local HF cache first, then the Hub when reachable."""
    tokenizers = _require_tokenizers()
    try:
        from huggingface_hub import hf_hub_download
    except ModuleNotFoundError:
        hf_hub_download = None
    if hf_hub_download is not None:
        try:
            path = hf_hub_download(name, "tokenizer.json", local_files_only=True)
            return tokenizers.Tokenizer.from_file(path)
        except Exception:
            pass
    try:  # a transformers installation may have a slow tokenizer convertible to a fast one in its cache
        from transformers import AutoTokenizer  # noqa: PLC0415

        tok = AutoTokenizer.from_pretrained(name, local_files_only=True, use_fast=True)
        return tok.backend_tokenizer
    except Exception:
        pass
    if not hub_reachable():
        raise InputError(f"text tokenizer '{name}': not in the local Hugging Face cache and the Hub is unreachable "
                         "(offline); pass a local tokenizer.json or folder, or tokenizer=byte")
    try:
        return tokenizers.Tokenizer.from_pretrained(name)
    except Exception as exc:
        raise InputError(f"text tokenizer '{name}': could not load from the Hugging Face Hub "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def load_tokenizer(spec) -> TextTokenizer:
    """``byte``, a ``tokenizer.json`` path, a folder (with ``tokenizer.json`` or ``text_tokenizer.json``), a
    Hub name, or a dict ``{"kind": "byte"|"hf", "name": ..., "file": ...}`` (see the module docstring)."""
    if isinstance(spec, TextTokenizer):
        return spec
    if spec is None:
        raise InputError("data.tokenizer: not set (use byte, a tokenizer.json path or folder, or a Hub name)")
    if isinstance(spec, dict) or hasattr(spec, "items"):
        spec = dict(spec)
        if spec.get("kind") == "byte":
            return ByteTokenizer()
        spec = spec.get("file") or spec.get("name")
        return load_tokenizer(spec)
    spec = str(spec)
    if spec in ("byte", "bytes", "utf8", "utf-8"):
        return ByteTokenizer()
    path = Path(spec).expanduser()
    if path.is_dir():
        meta = path / "text_tokenizer.json"
        if meta.is_file():
            info = json.loads(meta.read_text())
            if info.get("kind") == "byte":
                return ByteTokenizer()
            file = path / info.get("file", "tokenizer.json")
            if file.is_file():
                return HFTokenizer(_require_tokenizers().Tokenizer.from_file(str(file)), name=str(info.get("name", file)))
        if (path / "tokenizer.json").is_file():
            return HFTokenizer(_require_tokenizers().Tokenizer.from_file(str(path / "tokenizer.json")), name=str(path))
        raise InputError(f"data.tokenizer: folder {path} holds no tokenizer.json")
    if path.suffix == ".json" or os.sep in spec or spec.startswith("."):
        if not path.is_file():
            raise InputError(f"data.tokenizer: file not found: {path}")
        try:
            tok = _require_tokenizers().Tokenizer.from_file(str(path))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"data.tokenizer: {path} is not a Hugging Face tokenizer.json ({exc})") from None
        return HFTokenizer(tok, name=str(path))
    return HFTokenizer(_from_hub(spec), name=spec)


def vocab_spec(tokenizer: TextTokenizer) -> dict:
    """The ``vocab`` config entry (:meth:`DiffusionVocab.generic` arguments) for ``tokenizer``.

    Every id except ``[MASK]`` and ``[PAD]`` may be predicted (BOS/EOS occur in packed text)."""
    return {"num_tokens": int(tokenizer.vocab_size), "mask_id": int(tokenizer.mask_id), "pad_id": int(tokenizer.pad_id)}


# ----------------------------------------------------------------------------------------- training
def _iter_training_text(files: Sequence[str | os.PathLike], jsonl_field: str = "text"):
    for path in expand_text_files(files):
        yield from read_documents(path, jsonl_field=jsonl_field)


def train_bpe(files: Sequence[str | os.PathLike], vocab_size: int, out_dir: str | os.PathLike,
              min_frequency: int = 2, jsonl_field: str = "text") -> Path:
    """Train a byte-level BPE (``tokenizers`` library) on text files / folders / JSONL; returns ``out_dir``.

    Writes ``out_dir/tokenizer.json`` (loadable by :func:`load_tokenizer` and by ``transformers``) and
    ``out_dir/text_tokenizer.json``. Special tokens ``[BOS]`` 0, ``[EOS]`` 1, ``[PAD]`` 2, ``[MASK]`` 3; the
    vocabulary may end up smaller than ``vocab_size`` on a small corpus.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise InputError(f"tokenizer: vocab_size must be at least {256 + len(SPECIAL_TOKENS)} for byte-level BPE")
    files = list(files)
    if not files:
        raise InputError("tokenizer: no training files given")
    tokenizers = _require_tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), min_frequency=int(min_frequency),
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    count = 0

    def texts():
        nonlocal count
        for doc in _iter_training_text(files, jsonl_field):
            count += 1
            yield doc

    tok.train_from_iterator(texts(), trainer=trainer)
    if count == 0:
        raise InputError("tokenizer: the training files hold no text")
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    HFTokenizer(tok, name=str(out)).save(tmp)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "text_tokenizer.json"):
        os.replace(tmp / name, out / name)
    tmp.rmdir()
    return out
