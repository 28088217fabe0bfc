"""The genodiff CLI: help, errors as one line, Hydra overrides, --cfg, multirun, output folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genodiff.cli import JOBS, main

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "genodiff.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_help_lists_every_job(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in JOBS:
        assert f"  {name} " in out


def test_unknown_job_is_one_line_error(capsys):
    assert main(["nosuchjob"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["genodiff: error: unknown job 'nosuchjob' (jobs: " + ", ".join(JOBS) + "; see genodiff --help)"]


def test_unknown_config_key_is_one_line_error(tmp_path):
    result = run_cli("info", "no_such_key=3", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no_such_key" in lines[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_positional_choice(capsys):
    assert main(["data", "explode", "demo"]) == 2
    assert "unknown action 'explode'" in capsys.readouterr().err


def test_cfg_job_prints_composed_config(tmp_path):
    result = run_cli("info", "json=true", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "json: true" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_run_folder_holds_resolved_config_without_chdir(tmp_path):
    run_dir = tmp_path / "run1"
    result = run_cli("info", "json=true", f"hydra.run.dir={run_dir}", "hydra.output_subdir=.hydra", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text().count("json: true") == 1
    assert '"genodiff"' in result.stdout


def test_multirun_runs_every_sweep_value(tmp_path):
    result = run_cli("info", "-m", "json=true,false", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"genodiff"') == 1  # json=true run
    assert result.stdout.count("packages:") == 1  # json=false run
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]


@pytest.mark.parametrize("bad", ["json=[", "+=1"])
def test_unparsable_override_is_one_line(bad, capsys):
    assert main(["info", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genodiff: error:")
