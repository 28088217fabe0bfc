"""``genodiff data download|verify|prepare <dataset>`` and ``genodiff data tokenizer <files>``: the data job.

* ``download`` / ``verify`` / ``prepare``: fetch, check and encode a genome dataset into the cache (a
  manifest name, a manifest ``.yaml``, a local FASTA path, or a name with ``fasta=<path>``); see
  :mod:`genodiff.data.prepare`, which does the work. This module checks the config keys of
  ``configs/data.yaml`` (one-line :class:`~genodiff.errors.InputError` naming the key) and builds its
  :class:`~genodiff.data.prepare.PrepareConfig`.
* ``tokenizer``: train a byte-level BPE tokenizer on the user's text (:func:`run_tokenizer`).

:func:`prepare_dataset` is ``genodiff data prepare <dataset>`` from Python (notebooks).
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genodiff.config import to_plain
from genodiff.data import prepare as prep
from genodiff.data.text.tokenizers import load_tokenizer, train_bpe
from genodiff.errors import InputError

ACTIONS = tuple(prep.ACTIONS)


def _bool(cfg: DictConfig, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if isinstance(value, bool):
        return value
    raise InputError(f"config key '{key}': expected true or false, got {value!r}")


def _number(cfg: DictConfig, key: str, default: float, minimum: float = 0) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise InputError(f"config key '{key}': expected a number >= {minimum}, got {value!r}")
    return value


def _demo(cfg: DictConfig) -> prep.DemoConfig:
    demo = cfg.get("demo") or {}
    seed, window = demo.get("seed", 0), demo.get("window", 32768)
    for key, value, low in (("seed", seed, 0), ("window", window, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"config key 'demo.{key}': expected an integer >= {low}, got {value!r}")
    return prep.DemoConfig(seed=seed, window=window)


def prepare_config(cfg: DictConfig) -> prep.PrepareConfig:
    """The :class:`~genodiff.data.prepare.PrepareConfig` of a data job config (types checked)."""
    return prep.PrepareConfig(
        cache_dir=cfg.get("cache_dir"), manifest_dir=cfg.get("manifest_dir"), fasta=cfg.get("fasta"),
        intervals=cfg.get("intervals"), force=_bool(cfg, "force", False),
        progress=_bool(cfg, "progress", True) and sys.stderr.isatty(), timeout=_number(cfg, "timeout", 60.0, 1),
        retries=int(_number(cfg, "retries", 3, 0)), demo=_demo(cfg))


def run_tokenizer(cfg: DictConfig) -> dict[str, Any]:
    """``genodiff data tokenizer``: a byte-level BPE tokenizer trained on the user's text.

    Reads ``files`` (files, folders, glob patterns; .txt/.md/.jsonl; with the positional
    ``genodiff data tokenizer <path>`` the path arrives as ``dataset``), ``vocab_size`` (default 8192),
    ``min_frequency`` (default 2), ``jsonl_field`` (default ``text``) and ``out_dir`` (default
    ``bpe-<vocab_size>`` in the working folder), and writes ``out_dir/tokenizer.json`` (+ ``text_tokenizer.json``),
    usable as ``data.tokenizer=<out_dir>``. Prints one JSON line: the folder, the vocabulary size and the
    special token ids.
    """
    files = cfg.get("files")
    if isinstance(files, str):
        files = [files]
    elif files is not None and not isinstance(files, list):
        files = to_plain(files)
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


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one data action (see the module docstring); returns a JSON-serialisable report."""
    action = cfg.get("action")
    if action == "tokenizer":
        return run_tokenizer(cfg)
    if action not in ACTIONS:
        raise InputError(f"config key 'action': expected one of {', '.join(ACTIONS)}, got {action!r}")
    dataset = cfg.get("dataset")
    if dataset in (None, ""):
        raise InputError("config key 'dataset': give a dataset name (e.g. demo), a manifest .yaml or a FASTA path")
    return prep.ACTIONS[action](str(dataset), prepare_config(cfg), say=prep.say_stdout)


def prepare_dataset(dataset: str = "demo", cache_dir: str | os.PathLike | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """``genodiff data prepare <dataset>`` from Python (e.g. a notebook making sure ``demo`` exists).

    ``overrides`` are config keys of ``configs/data.yaml`` (``force=True``, ``intervals=...``, ...).
    Returns the same report as :func:`run` (``encoded``: the cache folder, ``fasta``, ``intervals``...).
    """
    base = OmegaConf.load(resources.files("genodiff.configs").joinpath("data.yaml").open("r", encoding="utf-8"))
    base.pop("defaults", None)
    base.pop("hydra", None)
    unknown = set(overrides) - set(base)
    if unknown:
        raise InputError(f"prepare_dataset: unknown config key(s) {', '.join(sorted(unknown))}")
    cfg = OmegaConf.merge(base, {"action": "prepare", "dataset": str(dataset), "cache_dir": cache_dir,
                                 "progress": False, **overrides})
    return run(cfg)


if __name__ == "__main__":  # pragma: no cover - convenience: python -m genodiff.tasks.data prepare demo
    args = sys.argv[1:]
    conf = OmegaConf.create({"action": args[0] if args else "prepare", "dataset": args[1] if len(args) > 1 else "demo"})
    conf.merge_with_dotlist(args[2:])
    print(json.dumps(run(conf), indent=2, default=str))
