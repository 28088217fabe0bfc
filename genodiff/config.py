"""Configuration at the edge: compose a job's config in Python exactly as the CLI does (for notebooks, scripts and
tests), turn config nodes into the plain values the library takes, and complete a text job's config from its
tokenizer."""

from __future__ import annotations

from typing import Any, Iterable

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from genodiff.data.text.tokenizers import load_tokenizer, vocab_spec
from genodiff.errors import InputError

CONFIG_PACKAGE = "genodiff.configs"


def compose_config(job: str, overrides: Iterable[str] = ()) -> DictConfig:
    """The config ``genodiff <job> <overrides>`` would run, e.g.
    ``compose_config("finetune", ["experiment/finetune=demo", "max_steps=10"])``.

    ``job`` is a primary config name (``finetune``, ``pretrain``, ``evaluate``, ``sample``...); presets are
    ordinary overrides of their group. No Hydra run folder is created.
    """
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
            return compose(config_name=job, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def to_plain(value: Any) -> Any:
    """Plain Python containers (dicts, lists, scalars) from an OmegaConf config or node, interpolations
    resolved; anything else is returned unchanged. Jobs hand plain values to the library below them."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def is_text_config(cfg) -> bool:
    """True when the job's ``data`` is a text corpus (``data.kind: text``)."""
    data = cfg.get("data") if hasattr(cfg, "get") else None
    return bool(data is not None and data.get("kind", None) == "text")


def resolve_text_config(cfg):
    """For ``data.kind: text``: fill ``vocab`` (when not a dict) and ``model.vocab_size`` from the tokenizer.

    Returns a new DictConfig (the input is not changed); other configs are returned unchanged. Runs at
    job start, never at compose time."""
    if not is_text_config(cfg):
        return cfg
    tokenizer = load_tokenizer(OmegaConf.to_container(cfg.data, resolve=True).get("tokenizer", "byte"))
    spec = vocab_spec(tokenizer)
    plain = OmegaConf.to_container(cfg, resolve=False)
    vocab = plain.get("vocab")
    if not isinstance(vocab, dict):
        plain["vocab"] = spec
    elif int(vocab.get("num_tokens", -1)) != spec["num_tokens"]:
        raise InputError(f"vocab.num_tokens={vocab.get('num_tokens')} but tokenizer "
                         f"'{cfg.data.tokenizer}' has {spec['num_tokens']} tokens")
    model = plain.get("model") or {}
    if model.get("vocab_size") in (None, "auto") or "vocab_size" not in model:
        model["vocab_size"] = plain["vocab"]["num_tokens"]
    elif int(model["vocab_size"]) < int(plain["vocab"]["num_tokens"]):
        raise InputError(f"model.vocab_size={model['vocab_size']} is smaller than the tokenizer's "
                         f"{plain['vocab']['num_tokens']} tokens")
    plain["model"] = model
    out = OmegaConf.create(plain)
    if isinstance(cfg, DictConfig):
        OmegaConf.set_struct(out, OmegaConf.is_struct(cfg))
    return out
