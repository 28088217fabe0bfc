"""Configs share keys through Hydra defaults inheritance, not copies (text data, run folders, presets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genodiff.cli import JOBS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEXT_BASE = "text_base"
RUN_DIR_FILE = "hydra/output/job.yaml"
NO_RUN_FOLDER_JOBS = {"info", "data", "models"}  # run in the current folder, write no .hydra/


def _load(relative: str) -> dict:
    return yaml.safe_load((CONFIGS / relative).read_text()) or {}


def _flatten(node, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1} (empty mappings are leaves; an empty top level gives {})."""
    if not prefix and not node:
        return {}
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _compose(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


TEXT_DATA = sorted(p.stem for p in (CONFIGS / "data").glob("text_*.yaml") if p.stem != TEXT_BASE)


def test_text_base_exists_and_text_data_configs_exist():
    assert (CONFIGS / "data" / f"{TEXT_BASE}.yaml").is_file()
    assert len(TEXT_DATA) >= 6


@pytest.mark.parametrize("name", TEXT_DATA)
def test_text_data_inherits_the_base_and_repeats_none_of_its_values(name):
    config = _load(f"data/{name}.yaml")
    assert config.get("defaults") == [TEXT_BASE, "_self_"], f"data/{name}.yaml must start from {TEXT_BASE}"
    base = _flatten(_load(f"data/{TEXT_BASE}.yaml"))
    own = _flatten({k: v for k, v in config.items() if k != "defaults"})
    # a key is the base's own or lies inside one of its mappings (e.g. synthetic: {} -> synthetic.order)
    unknown = {k for k in own if not any(k == b or k.startswith(b + ".") for b in base)}
    assert not unknown, f"data/{name}.yaml: keys not in {TEXT_BASE}.yaml: {sorted(unknown)}"
    copies = sorted(k for k, v in own.items() if k in base and base[k] == v)
    assert not copies, f"data/{name}.yaml repeats the value of {TEXT_BASE}.yaml for {copies}"


def _hydra_run_dirs() -> dict[str, str]:
    """Every config file that sets hydra.run.dir -> the value it sets."""
    found = {}
    for path in sorted(CONFIGS.rglob("*.yaml")):
        relative = path.relative_to(CONFIGS).as_posix()
        text = path.read_text()
        config = yaml.safe_load(text) or {}
        hydra = config if text.lstrip().startswith("# @package hydra") else config.get("hydra") or {}
        run_dir = (hydra.get("run") or {}).get("dir") if isinstance(hydra, dict) else None
        if run_dir is not None:
            found[relative] = run_dir
    return found


def test_the_run_folder_block_lives_in_one_file():
    run_dirs = _hydra_run_dirs()
    outputs = sorted(f for f, d in run_dirs.items() if d != ".")
    assert outputs == [RUN_DIR_FILE], f"hydra run folders set outside {RUN_DIR_FILE}: {outputs}"
    assert sorted(run_dirs) == sorted([RUN_DIR_FILE] + [f"{j}.yaml" for j in NO_RUN_FOLDER_JOBS])


@pytest.mark.parametrize("job", sorted({j.config_name for j in JOBS.values()} - NO_RUN_FOLDER_JOBS))
def test_result_jobs_write_into_outputs_of_their_name(job):
    assert {"override hydra/output": "job"} in _load(f"{job}.yaml")["defaults"]
    cfg = _compose(job, [])
    assert cfg.hydra.runtime.choices["hydra/output"] == "job"
    assert cfg.hydra.job.name == job
    run_dir = cfg.hydra.run.dir  # resolves ${hydra.job.name} and ${now:}
    assert run_dir.startswith(f"outputs/{job}/") and "${" not in run_dir


def _preset_parent(group: str, name: str) -> str | None:
    """The preset a preset inherits (``/experiment/<group>/<name>@_here_`` in its defaults), if any."""
    for entry in _load(f"{group}/{name}.yaml").get("defaults") or []:
        if isinstance(entry, str) and entry.startswith("/experiment/") and entry.endswith("@_here_"):
            return entry[1: -len("@_here_")]
    return None


PRESETS = [(job.config_name, job.preset_group, p.stem) for job in JOBS.values() if job.preset_group
           for p in sorted((CONFIGS / job.preset_group).glob("*.yaml"))]
INHERITED = [(c, g, n, _preset_parent(g, n)) for c, g, n in PRESETS if _preset_parent(g, n)]


def test_near_identical_presets_inherit():
    pairs = {f"{g}/{n}": parent for _, g, n, parent in INHERITED}
    assert pairs.get("experiment/finetune/demo") == "experiment/pretrain/demo"
    assert pairs.get("experiment/finetune/hg38") == "experiment/pretrain/hg38"
    assert pairs.get("experiment/pretrain/text_cpu_ar") == "experiment/pretrain/text_cpu"
    for name in ("text_tiny", "text_medium", "text_lm1b"):
        assert pairs.get(f"experiment/pretrain/{name}") == "experiment/pretrain/text_small"


@pytest.mark.parametrize(("config_name", "group", "name", "parent"), INHERITED,
                         ids=[f"{g}/{n}" for _, g, n, _ in INHERITED])
def test_inherited_preset_differs_from_its_parent_only_where_it_says_so(config_name, group, name, parent):
    own = _load(f"{group}/{name}.yaml")
    parent_job = parent.split("/")[1]
    changed_groups = {key.removeprefix("override /") for e in own.get("defaults", []) if isinstance(e, dict)
                      for key in e if key.startswith("override /")}
    changed_keys = set(_flatten({k: v for k, v in own.items() if k != "defaults"}))
    child = _compose(config_name, [f"{group}={name}"])
    base = _compose(parent_job, [f"{parent.rsplit('/', 1)[0]}={parent.rsplit('/', 1)[1]}"])
    child_job, base_job = _flatten(OmegaConf.to_container(child)), _flatten(OmegaConf.to_container(base))
    for flat in (child_job, base_job):
        for key in [k for k in flat if k.startswith("hydra.") or k == "job"]:
            del flat[key]
    def in_changed_group(key: str) -> bool:
        return key.split(".")[0] in changed_groups

    assert {k for k in child_job if not in_changed_group(k)} == {k for k in base_job if not in_changed_group(k)}
    differing = {k for k in set(child_job) | set(base_job) if child_job.get(k, "<absent>") != base_job.get(k, "<absent>")}
    explained = {k for k in differing if k in changed_keys or in_changed_group(k)}
    assert differing == explained, f"{group}/{name}: unexpected differences {sorted(differing - explained)}"
    assert changed_keys <= differing, f"{group}/{name} repeats values of {parent}: {sorted(changed_keys - differing)}"
    for group_name in changed_groups:
        assert child.hydra.runtime.choices[group_name] != base.hydra.runtime.choices[group_name]
