"""genodiff.analysis.notebook_helpers and the one ``shared_root`` that notebooks, tests and tasks share."""

from __future__ import annotations

from pathlib import Path

import pytest

from genodiff.analysis.notebook_helpers import default_output, save_figure, shared_data, shared_root
from genodiff.tasks.benchmark import resolve_path


def test_shared_root_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("GENODIFF_SHARED", str(tmp_path))
    assert shared_root() == tmp_path and shared_data() == tmp_path / "data"
    assert resolve_path("shared:data/x.fa") == tmp_path / "data" / "x.fa"
    repo = Path(__file__).resolve().parents[2]
    for unset in (lambda: monkeypatch.delenv("GENODIFF_SHARED"), lambda: monkeypatch.setenv("GENODIFF_SHARED", "")):
        unset()
        assert shared_root() == repo.parent / "shared"


def test_default_output_from_repo_or_notebooks_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert default_output("x") == tmp_path / "notebooks" / "_output" / "x"
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert default_output("x") == tmp_path / "notebooks" / "_output" / "x"


def test_save_figure_writes_closes_and_displays(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    ipd = pytest.importorskip("IPython.display")
    shown = []
    monkeypatch.setattr(ipd, "display", lambda obj: shown.append(obj))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(tmp_path, fig, "line.png")
    assert path == tmp_path / "line.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert len(shown) == 1 and shown[0].data == path.read_bytes()
