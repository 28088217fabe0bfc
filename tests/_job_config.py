"""A job's config for tests that call a task's ``run(cfg)`` directly (importable from every test: pytest puts
``tests/`` on ``sys.path`` for its conftest)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def job_config(job: str, **overrides) -> DictConfig:
    """``configs/<job>.yaml`` as written (its ``hydra`` and ``defaults`` keys dropped, no Hydra composition),
    with ``overrides`` merged in; keys may be dotted (``**{"conditioning.prefix": "ACGT"}``)."""
    cfg = OmegaConf.load(CONFIGS / f"{job}.yaml")
    cfg.pop("hydra")
    cfg.pop("defaults")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg
