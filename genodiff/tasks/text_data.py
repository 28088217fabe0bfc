"""``genodiff data tokenizer ...``: train a byte-level BPE tokenizer on the user's text.

``run_tokenizer(cfg)`` reads ``files`` (files, folders, glob patterns; .txt/.md/.jsonl; with the data job's
positionals ``genodiff data tokenizer <path>`` the path arrives as ``dataset``), ``vocab_size`` (default
8192), ``min_frequency`` (default 2), ``jsonl_field`` (default ``text``) and ``out_dir`` (default
``bpe-<vocab_size>`` in the working folder), and writes ``out_dir/tokenizer.json`` (+ ``text_tokenizer.json``),
usable as ``data.tokenizer=<out_dir>``. Prints one JSON line: the folder, the vocabulary size and the
special token ids.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genodiff.errors import InputError


def run_tokenizer(cfg: DictConfig) -> dict[str, Any]:
    from genodiff.data.text_tokenizers import load_tokenizer, train_bpe

    files = cfg.get("files")
    if isinstance(files, str):
        files = [files]
    elif files is not None and not isinstance(files, list):
        files = OmegaConf.to_container(files, resolve=True)
    if not files and cfg.get("action") == "tokenizer" and cfg.get("dataset"):
        files = [str(cfg.dataset)]
    if not files:
        raise InputError("files: give the text files, folders or patterns to train the tokenizer on")
    vocab_size = int(cfg.get("vocab_size") or 8192)
    out = train_bpe(list(files), vocab_size, cfg.get("out_dir") or f"bpe-{vocab_size}",
                    min_frequency=int(cfg.get("min_frequency") or 2), jsonl_field=str(cfg.get("jsonl_field") or "text"))
    tok = load_tokenizer(out)
    result = {"tokenizer": str(out), "vocab_size": tok.vocab_size, "bos_id": tok.bos_id, "eos_id": tok.eos_id,
              "pad_id": tok.pad_id, "mask_id": tok.mask_id}
    print(json.dumps(result))
    return result
