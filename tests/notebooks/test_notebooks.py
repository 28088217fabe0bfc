"""The analysis notebooks (notebooks/*.ipynb): committed without outputs, in sync with notebooks/src, each with a
``parameters`` cell, and each executed end to end in smoke mode (papermill-style: a ``SMOKE = True`` cell is
injected after the parameters cell) with nbclient, writing its PNG figures.

The executed copies and figures are kept in the test's tmp_path (``<name>.executed.ipynb`` + ``<name>/*.png``).
Run with SMOKE off (real data, minutes each): ``GENODIFF_FULL_NOTEBOOKS=1 pytest tests/notebooks -m slow``; see
docs/notebooks.md.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SMOKE_TIMEOUT_S = 170  # per notebook (the issue: under 2 minutes each, with headroom for a loaded machine)

sys.path.insert(0, str(NOTEBOOKS))
import _build  # noqa: E402  (notebooks/_build.py: the notebooks are generated from notebooks/src)


def _ids(paths):
    return [p.stem for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one code cell must be tagged 'parameters'"
    return tagged[0]


def test_every_source_has_a_notebook():
    assert [p.stem for p in _build.sources()] == [p.stem for p in PATHS]
    assert len(PATHS) >= 1


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_committed_without_outputs(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(raw["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"cell {i} has outputs: strip them (python notebooks/_build.py)"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
    assert "widgets" not in raw["metadata"]


@pytest.mark.parametrize("source", _build.sources(), ids=[p.stem for p in _build.sources()])
def test_source_is_plain_python(source):
    """Sources stay runnable as scripts (python notebooks/src/NN_x.py) and lintable: no IPython magics."""
    compile(source.read_text(encoding="utf-8"), str(source), "exec")


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_in_sync_with_source(path):
    source = NOTEBOOKS / "src" / f"{path.stem}.py"
    assert path.read_text(encoding="utf-8") == _build.render(_build.build_notebook(source)), \
        "notebook differs from notebooks/src: run python notebooks/_build.py"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_parameters_cell(path):
    nb = _read(path)
    params = nb.cells[_parameters_index(nb)].source
    namespace: dict = {}
    exec(compile(params, f"{path.name}:parameters", "exec"), namespace)  # plain assignments only
    assert namespace["SMOKE"] is False, "the committed default is the real run; the tests inject SMOKE = True"
    assert "OUTPUT_DIR" in namespace
    assert nb.metadata["genodiff"]["figures"], "list the PNG files in the source header (# figures: ...)"
    for cell in nb.cells:  # public API only: no private genodiff modules or names
        if cell.cell_type == "code":
            assert not re.search(r"\bgenodiff(?:\.[A-Za-z]\w*)*\._(?!_)", cell.source), cell.source
            assert not re.search(r"^\s*from genodiff\S* import .*\b_[a-z]", cell.source, re.M), cell.source


def execute(path: Path, tmp_path: Path, smoke: bool, timeout: int) -> tuple[Path, float, Path]:
    """Run one notebook in ``tmp_path`` with the parameters injected; return (figure folder, seconds, copy)."""
    nb = _read(path)
    out_dir = tmp_path / path.stem
    injected = nbformat.v4.new_code_cell(f"# Injected parameters\nSMOKE = {smoke}\nOUTPUT_DIR = {str(out_dir)!r}\n")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(_parameters_index(nb) + 1, injected)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.monotonic()
    try:
        client.execute()
    finally:
        executed = tmp_path / f"{path.stem}.executed.ipynb"
        nbformat.write(nb, executed)
    return out_dir, time.monotonic() - started, executed


@pytest.fixture(scope="session")
def notebook_data_cache(tmp_path_factory) -> Path:
    """One data cache for all notebooks (the demo genome is generated once per session)."""
    return tmp_path_factory.mktemp("notebook_genodiff_data")


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, notebook_data_cache):
    """The kernel is ``python3`` from this interpreter (its kernelspec runs ``python`` from PATH), with a
    session-wide private data cache, one torch thread and matplotlib without a display."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("GENODIFF_DATA", str(notebook_data_cache))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    threads = os.environ.get("GENODIFF_NOTEBOOK_THREADS", "1")  # one thread: far faster on a shared, busy CPU
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, threads)
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return tmp_path


def _check_figures(path: Path, out_dir: Path, executed: Path):
    figures = _read(path).metadata["genodiff"]["figures"]
    for name in figures:
        figure = out_dir / name
        assert figure.is_file(), f"{path.name} did not write {name}"
        assert figure.stat().st_size > 1000 and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    shown = sum("image/png" in out.get("data", {}) for cell in _read(executed).cells if cell.cell_type == "code"
                for out in cell.outputs)
    assert shown >= len(figures), f"{path.name}: {shown} figures displayed in the notebook, {len(figures)} written"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_executes_in_smoke_mode(path, kernel_env):
    out_dir, seconds, executed = execute(path, kernel_env, smoke=True, timeout=SMOKE_TIMEOUT_S)
    _check_figures(path, out_dir, executed)
    assert seconds < SMOKE_TIMEOUT_S, f"{path.name} took {seconds:.0f} s in smoke mode"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_executes_on_real_data(path, kernel_env):
    """SMOKE = False: the notebook's real run (real data from ../shared where it uses it). Minutes each."""
    if os.environ.get("GENODIFF_FULL_NOTEBOOKS") != "1":
        pytest.skip("set GENODIFF_FULL_NOTEBOOKS=1 (and -m slow) to run the notebooks with SMOKE off")
    out_dir, _, executed = execute(path, kernel_env, smoke=False, timeout=3600)
    _check_figures(path, out_dir, executed)
