"""Every config composes on a CPU machine without running code at compose time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genodiff.cli import JOBS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
ALLOWED_RESOLVERS = {"oc.env", "oc.select", "oc.decode", "now", "hydra"}


def _compose(config_name: str, overrides: list[str] | None = None):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def primary_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def preset_cases() -> list[tuple[str, str, str]]:
    cases = []
    for job in JOBS.values():
        if job.preset_group:
            for path in sorted((CONFIGS / job.preset_group).glob("*.yaml")):
                cases.append((job.config_name, job.preset_group, path.stem))
    return cases


def test_every_job_has_a_config():
    for job in JOBS.values():
        assert (CONFIGS / f"{job.config_name}.yaml").is_file(), job.name


@pytest.mark.parametrize("config_name", primary_configs())
def test_primary_config_composes_and_resolves(config_name):
    cfg = _compose(config_name)
    OmegaConf.resolve(cfg)  # interpolations resolve without errors
    trainer = cfg.get("trainer")
    if trainer is not None:
        assert trainer.get("accelerator", "cpu") in {"cpu", "auto"}


@pytest.mark.parametrize(("config_name", "group", "preset"), preset_cases())
def test_preset_composes(config_name, group, preset):
    cfg = _compose(config_name, [f"{group}={preset}"])
    OmegaConf.resolve(cfg)


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_no_code_runs_at_compose_time(path):
    text = path.read_text()
    for resolver in re.findall(r"\$\{([A-Za-z_.]+):", text):
        assert resolver in ALLOWED_RESOLVERS, f"{path}: resolver {resolver} may run code at compose time"
    assert "nvidia-smi" not in text and "_target_: os." not in text
