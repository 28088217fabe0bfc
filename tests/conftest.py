"""Shared test fixtures.

Real reference data lives outside the project in ``../shared`` (or ``$GENODIFF_SHARED``); tests that
use it skip cleanly when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genodiff.data.manifest import shared_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real DNA, read-only); skips the test when it is absent."""
    path = shared_root() / "data"
    if not path.is_dir():
        pytest.skip(f"shared reference data not found at {path}")
    return path


# Folders of many tiny models: intra-op threads only add contention there (and on a shared 2-core box).
# A test module elsewhere opts in with a module-level ``ONE_TORCH_THREAD = True``.
ONE_THREAD_FOLDERS = ("benchmarks", "diffusion", "text")


@pytest.fixture(autouse=True)
def _one_torch_thread_for_tiny_models(request):
    """Tests under ONE_THREAD_FOLDERS, or in a module with ``ONE_TORCH_THREAD = True``, run with one torch
    intra-op thread (restored afterwards)."""
    folder = Path(request.node.path).resolve().relative_to(Path(__file__).resolve().parent).parts[0]
    if folder not in ONE_THREAD_FOLDERS and not getattr(request.module, "ONE_TORCH_THREAD", False):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty data cache unless it sets GENODIFF_DATA itself."""
    monkeypatch.setenv("GENODIFF_DATA", str(tmp_path_factory.mktemp("genodiff_cache")))
