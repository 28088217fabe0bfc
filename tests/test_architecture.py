"""The layers of docs/design.md hold: import-linter's contracts (pyproject.toml) pass on the package and fail
when an upward import or an import cycle is planted in a copy of it (so the check has power)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e .[dev])")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the ``genodiff`` package found under ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO_ROOT / "pyproject.toml")],
                          cwd=package_parent, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "genodiff", tmp_path / "genodiff", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_contracts_hold_on_the_package(package_copy):
    result = lint_imports(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_planted_upward_import_breaks_the_layers(package_copy):
    vocab = package_copy / "genodiff" / "data" / "genome" / "vocab.py"
    vocab.write_text(vocab.read_text() + "\n\ndef _planted():\n    from genodiff.tasks import run_folder  # noqa: F401\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "genodiff.data is not allowed to import genodiff.tasks" in result.stdout
    assert "genodiff.data.genome.vocab -> genodiff.tasks.run_folder" in result.stdout


def test_planted_sibling_import_breaks_independence(package_copy):
    kmer = package_copy / "genodiff" / "benchmarks" / "metrics.py"
    kmer.write_text(kmer.read_text() + "\n\nimport genodiff.generate.scoring  # noqa: E402,F401\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "genodiff.benchmarks is not allowed to import genodiff.generate" in result.stdout


def test_planted_cycle_breaks_acyclicity(package_copy):
    corpus = package_copy / "genodiff" / "data" / "text" / "corpus.py"
    corpus.write_text(corpus.read_text() + "\n\nimport genodiff.data.text.tokenizers  # noqa: E402,F401\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "No cycles are allowed in genodiff.data.text" in result.stdout


# Imports inside functions are kept only for optional packages and for measured start-up costs.
OPTIONAL_PACKAGES = {"mamba_ssm", "causal_conv1d", "triton", "numba", "tokenizers", "transformers", "huggingface_hub",
                     "datasets", "pyarrow", "fastparquet", "IPython", "gradio"}
START_UP_EXCEPTIONS = {
    # `genodiff --help` and override errors stay fast: importing hydra costs ~0.3 s
    ("genodiff/cli.py", "hydra"), ("genodiff/cli.py", "hydra.core.override_parser.overrides_parser"),
    ("genodiff/cli.py", "genodiff.config"),
    # applied when a job runs: importing genodiff.ops loads torch (~1.5 s), which --help must not pay
    ("genodiff/cli.py", "genodiff.ops.allocator"),
    # k-mer-only benchmark workers do not pay torch's ~1.7 s import
    ("genodiff/benchmarks/runner.py", "torch"), ("genodiff/benchmarks/runner.py", "genodiff.benchmarks.neural"),
}


def function_level_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    found.append(inner.module)
                elif isinstance(inner, ast.Import):
                    found += [alias.name for alias in inner.names]
    return found


def test_imports_are_at_module_top():
    offenders = []
    for path in sorted((REPO_ROOT / "genodiff").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        for module in function_level_imports(path):
            if module.split(".")[0] in OPTIONAL_PACKAGES or (rel, module) in START_UP_EXCEPTIONS:
                continue
            offenders.append(f"{rel}: {module}")
    assert not offenders, "imports inside functions (move them to the module top): " + "; ".join(offenders)
