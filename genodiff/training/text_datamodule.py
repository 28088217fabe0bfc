"""Lightning DataModule over tokenized text, with the genome DataModule's deterministic, resumable sampling.

Same constructor contract as :class:`genodiff.training.datamodule.GenomeDataModule`:
``TextDataModule(config, batch_size, max_steps, accumulate_grad_batches)``. Batches are dicts
``{"input_ids": LongTensor[B, L], "attention_mask": BoolTensor[B, L]}`` (True = real token), so the
same :class:`~genodiff.training.module.DiffusionLitModule` trains on DNA and text.

Modes (``mode``):

* ``wrap`` (MDLM's OpenWebText / text8 setting): every document becomes ``[BOS] doc [EOS]`` (with
  ``add_bos_eos``), all documents are concatenated and the stream is cut into chunks of ``seq_len``
  (the remainder is dropped); no padding, the attention mask is all True.
* ``padded`` (MDLM's LM1B setting): one item per document, ``[BOS] doc[:seq_len-2] [EOS]`` padded with
  ``[PAD]`` to ``seq_len``; padding is never noised nor scored (it is not an allowed output id).

Training batches come from :class:`~genodiff.training.datamodule.StepBatchSampler`: micro-batch ``m`` is a
pure function of ``(seed, m, rank)`` and the loader resumes at ``trainer.global_step * accumulate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genodiff.data.text.corpus import TextSourceConfig, TokenCache, build_token_cache
from genodiff.data.text.tokenizers import TextTokenizer, load_tokenizer, vocab_spec
from genodiff.errors import InputError
from genodiff.training.datamodule import StepDataModule

__all__ = ["TextDataConfig", "TextDataModule", "PackedTextDataset", "PaddedTextDataset", "text_collate"]

SPLITS = ("train", "valid", "test")


@dataclass
class TextDataConfig(TextSourceConfig):
    """Text data options (``configs/data/text_*.yaml``): the source fields of :class:`TextSourceConfig` plus
    tokenization and loading."""

    kind: str = "text"
    tokenizer: Any = "byte"
    seq_len: int = 128
    mode: str = "wrap"
    add_bos_eos: bool = True
    cache_dir: str | None = None
    max_eval_items: int | None = 256
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.kind != "text":
            raise InputError(f"data.kind: TextDataModule needs kind=text, got '{self.kind}'")
        if self.mode not in ("wrap", "padded"):
            raise InputError(f"data.mode: '{self.mode}' is not wrap or padded")
        if self.seq_len < (3 if self.mode == "padded" and self.add_bos_eos else 1):
            raise InputError(f"data.seq_len: {self.seq_len} is too short")

    def source_config(self) -> TextSourceConfig:
        names = {f.name for f in fields(TextSourceConfig)}
        return TextSourceConfig(**{k: v for k, v in asdict(self).items() if k in names})

    @classmethod
    def from_dict(cls, spec: dict) -> "TextDataConfig":
        spec = dict(spec)
        names = {f.name for f in fields(cls)}
        bad = sorted(set(spec) - names)
        if bad:
            raise InputError(f"data: unknown text data key(s) {bad} (known: {sorted(names)})")
        return cls(**spec)


class PackedTextDataset(Dataset):
    """Chunks of ``seq_len`` tokens of the stream ``[BOS] d_0 [EOS] [BOS] d_1 [EOS] ...`` (memory-mapped)."""

    def __init__(self, cache: TokenCache, seq_len: int, bos_id: int, eos_id: int, add_bos_eos: bool = True):
        self.cache, self.seq_len, self.bos, self.eos = cache, int(seq_len), int(bos_id), int(eos_id)
        self.extra = 2 if add_bos_eos else 0
        lengths = np.diff(cache.offsets)
        self.vstarts = np.concatenate([[0], np.cumsum(lengths + self.extra)]).astype(np.int64)  # virtual doc starts
        self.total = int(self.vstarts[-1])
        self.indices = np.arange(self.total // self.seq_len)

    def __len__(self) -> int:
        return len(self.indices)

    def tokens(self, i: int) -> np.ndarray:
        start = int(self.indices[i]) * self.seq_len
        pos = np.arange(start, start + self.seq_len, dtype=np.int64)
        doc = np.searchsorted(self.vstarts, pos, side="right") - 1
        within = pos - self.vstarts[doc]
        if not self.extra:
            return np.asarray(self.cache.tokens[self.cache.offsets[doc] + within], dtype=np.int64)
        length = self.vstarts[doc + 1] - self.vstarts[doc] - 2
        body = (within >= 1) & (within <= length)
        src = np.where(body, self.cache.offsets[doc] + within - 1, 0)
        out = np.where(within == 0, self.bos, self.eos).astype(np.int64)
        if body.any():
            out[body] = np.asarray(self.cache.tokens[src[body]], dtype=np.int64)
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self.tokens(i))
        return {"input_ids": ids, "attention_mask": torch.ones(self.seq_len, dtype=torch.bool)}

    def subset(self, keep: np.ndarray) -> "PackedTextDataset":
        out = object.__new__(PackedTextDataset)
        out.__dict__.update(self.__dict__)
        out.indices = self.indices[keep]
        return out


class PaddedTextDataset(Dataset):
    """One item per document: ``[BOS] doc[:seq_len-2] [EOS] [PAD]...`` (truncated to ``seq_len``)."""

    def __init__(self, cache: TokenCache, seq_len: int, bos_id: int, eos_id: int, pad_id: int,
                 add_bos_eos: bool = True):
        self.cache, self.seq_len = cache, int(seq_len)
        self.bos, self.eos, self.pad, self.add = int(bos_id), int(eos_id), int(pad_id), bool(add_bos_eos)
        lengths = np.diff(cache.offsets)
        self.indices = np.flatnonzero(lengths > 0) if len(lengths) else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        doc = np.asarray(self.cache.document(int(self.indices[i])), dtype=np.int64)
        body = self.seq_len - (2 if self.add else 0)
        doc = doc[:body]
        parts = [[self.bos], doc, [self.eos]] if self.add else [doc]
        ids = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
        n = len(ids)
        out = np.full(self.seq_len, self.pad, dtype=np.int64)
        out[:n] = ids
        mask = np.zeros(self.seq_len, dtype=bool)
        mask[:n] = True
        return {"input_ids": torch.from_numpy(out), "attention_mask": torch.from_numpy(mask)}

    def subset(self, keep: np.ndarray) -> "PaddedTextDataset":
        out = object.__new__(PaddedTextDataset)
        out.__dict__.update(self.__dict__)
        out.indices = self.indices[keep]
        return out


def text_collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.stack([it["input_ids"] for it in items]),
            "attention_mask": torch.stack([it["attention_mask"] for it in items])}


class TextDataModule(StepDataModule):
    """Train/valid/test text items for the training, evaluation and sampling jobs (see module docstring)."""

    collate_fn = staticmethod(text_collate)

    def __init__(self, config: TextDataConfig | dict, batch_size: int = 8, max_steps: int = 1000,
                 accumulate_grad_batches: int = 1):
        super().__init__(batch_size, max_steps, accumulate_grad_batches)
        self.config = config if isinstance(config, TextDataConfig) else TextDataConfig.from_dict(dict(config))
        self._tokenizer: TextTokenizer | None = None
        self.caches: dict[str, TokenCache] = {}
        self.cache_folder = None
        self.cache_built = False

    @property
    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.tokenizer)
        return self._tokenizer

    def vocab(self) -> dict:
        """The ``vocab`` config entry of this data (``num_tokens``, ``mask_id``, ``pad_id``)."""
        return vocab_spec(self.tokenizer)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cfg, tok = self.config, self.tokenizer
        self.caches, self.cache_folder, self.cache_built = build_token_cache(cfg.source_config(), tok, cfg.cache_dir)
        for split in SPLITS:
            cache = self.caches[split]
            if cfg.mode == "wrap":
                ds = PackedTextDataset(cache, cfg.seq_len, tok.bos_id, tok.eos_id, cfg.add_bos_eos)
            else:
                ds = PaddedTextDataset(cache, cfg.seq_len, tok.bos_id, tok.eos_id, tok.pad_id, cfg.add_bos_eos)
            if split != "train" and cfg.max_eval_items and len(ds) > cfg.max_eval_items:
                ds = ds.subset(np.linspace(0, len(ds) - 1, cfg.max_eval_items).round().astype(np.int64))
            self.datasets[split] = ds

    def empty_split_message(self, split: str) -> str:
        if split == "train":
            return (f"data: the training split has no items of {self.config.seq_len} tokens "
                    "(more text or a smaller data.seq_len)")
        return (f"data: the {split} split has no items of {self.config.seq_len} tokens "
                "(raise data.valid_fraction / data.test_fraction or lower data.seq_len)")

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.config.seed, "batch_size": self.batch_size, "seq_len": self.config.seq_len,
                "mode": self.config.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff:
            desc = ", ".join(f"{k}={a} (now {b})" for k, (a, b) in diff.items())
            raise InputError(f"resume: checkpoint was trained with data {desc}")

    # export hooks -------------------------------------------------------------------------
    def export_extra(self) -> dict:
        """What a sampler needs to turn ids back into text (stored in the export's ``training.text``)."""
        c = self.config
        return {"text": {"tokenizer": self.tokenizer.spec(), "seq_len": c.seq_len, "mode": c.mode,
                         "add_bos_eos": c.add_bos_eos, "bos_id": self.tokenizer.bos_id,
                         "eos_id": self.tokenizer.eos_id}}

    def write_export_files(self, export_dir) -> None:
        """Save the tokenizer into ``export_dir/tokenizer/`` so the export is self-contained."""
        self.tokenizer.save(Path(export_dir) / "tokenizer")
