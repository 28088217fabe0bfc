"""Packaging: pyproject and environment.yml agree; configs and manifests ship inside the wheel."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _requirement(text: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    assert match, text
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    expected = dict(_requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = dict(_requirement(r) for r in pip_section)
    assert listed == expected
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]


def test_cuda_extra_is_optional_and_never_imported_at_top():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    cuda = {_requirement(r)[0] for r in project["optional-dependencies"]["cuda"]}
    assert cuda == {"mamba-ssm", "causal-conv1d"}
    deps = {_requirement(r)[0] for r in project["dependencies"]}
    assert not cuda & deps
    for path in (REPO_ROOT / "genodiff").rglob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.match(r"(from|import)\s+(mamba_ssm|causal_conv1d)\b", line), f"{path}: {line}"


def test_gpu_extra_is_optional_and_triton_is_imported_lazily():
    """triton: the ``gpu`` extra (and dev), never a dependency. Only genodiff/ops/_triton_kernels.py imports it
    at its top, and no module imports that file with an import statement (it is loaded with importlib on the
    first Triton scan; tests/ops/test_selective_scan.py checks that importing genodiff loads no triton)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert {_requirement(r)[0] for r in project["optional-dependencies"]["gpu"]} == {"triton"}
    assert "triton" in {_requirement(r)[0] for r in project["optional-dependencies"]["dev"]}
    assert "triton" not in {_requirement(r)[0] for r in project["dependencies"]}
    for path in (REPO_ROOT / "genodiff").rglob("*.py"):
        text = path.read_text()
        top = [line for line in text.splitlines() if re.match(r"(from|import)\s+triton\b", line)]
        assert not top or path.name == "_triton_kernels.py", f"{path}: {top}"
        assert not re.search(r"^\s*(from\s+\S+\s+)?import\s+.*_triton_kernels", text, re.M), path


def test_every_subpackage_is_listed():
    setuptools_cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools_cfg["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / "genodiff").rglob("__init__.py")
    }
    assert on_disk <= listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO_ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("genodiff-*.whl")
    return path


def test_wheel_contains_configs_and_manifests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(n for n in names if n.startswith("genodiff/configs/") and n.endswith(".yaml"))
    expected = sorted("genodiff/configs/" + p.relative_to(REPO_ROOT / "configs").as_posix()
                      for p in (REPO_ROOT / "configs").rglob("*.yaml"))
    assert configs == expected
    manifests = sorted(n for n in names if n.startswith("genodiff/data_manifests/") and n.endswith(".yaml"))
    assert manifests == sorted("genodiff/data_manifests/" + p.name for p in (REPO_ROOT / "data_manifests").glob("*.yaml"))
    assert "genodiff/cli.py" in names


def _resource_files() -> list[str]:
    """Every file under genodiff/resources/ (the bundled models included), as archive paths below the package."""
    root = REPO_ROOT / "genodiff"
    return sorted(p.relative_to(root).as_posix() for p in (root / "resources").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def test_package_data_globs_cover_bundled_models():
    """A bundled model's three files match the package-data globs (so the wheel test below covers models added
    later); a file one folder deeper does not (the globs are not catch-alls)."""
    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["genodiff"]
    for name in ("model.safetensors", "genodiff.json", "MODEL_CARD.md"):
        path = f"resources/models/caduceus-ps-tiny-hg38chr2/{name}"
        assert any(fnmatch.fnmatchcase(path, g) and g.count("/") == path.count("/") for g in globs), path
    deeper = "resources/models/m/sub/model.safetensors"
    assert not any(fnmatch.fnmatchcase(deeper, g) and g.count("/") == deeper.count("/") for g in globs)


def test_wheel_ships_every_resource_file(wheel):
    """The bundled models (and every other resource file) are in the wheel: a bundled model file missing from
    the package data fails here."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in _resource_files() if f"genodiff/{f}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "genodiff/resources/models/README.md" in names


def test_sdist_ships_every_resource_file(tmp_path):
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})"],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("genodiff-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    missing = [f for f in _resource_files() if f"genodiff/{f}" not in names]
    assert not missing, f"not in the sdist: {missing}"


def test_installed_wheel_cli_resolves_packaged_configs(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import genodiff; print(genodiff.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target))
    result = subprocess.run([sys.executable, "-m", "genodiff.cli", "info", "--cfg", "job"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cache_dir" in result.stdout
