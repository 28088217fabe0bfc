"""Compose a job's configuration in Python exactly as the CLI does (for notebooks, scripts and tests)."""

from __future__ import annotations

from typing import Iterable

from omegaconf import DictConfig

CONFIG_PACKAGE = "genodiff.configs"


def compose_config(job: str, overrides: Iterable[str] = ()) -> DictConfig:
    """The config ``genodiff <job> <overrides>`` would run, e.g.
    ``compose_config("finetune", ["experiment/finetune=demo", "max_steps=10"])``.

    ``job`` is a primary config name (``finetune``, ``pretrain``, ``evaluate``, ``sample``...); presets are
    ordinary overrides of their group. No Hydra run folder is created.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
            return compose(config_name=job, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
