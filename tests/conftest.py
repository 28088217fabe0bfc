"""Shared test fixtures.

Real reference data lives outside the project in ``../shared`` (or ``$GENODIFF_SHARED``); tests that
use it skip cleanly when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genodiff.data.manifest import shared_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real DNA, read-only); skips the test when it is absent."""
    path = shared_root() / "data"
    if not path.is_dir():
        pytest.skip(f"shared reference data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty data cache unless it sets GENODIFF_DATA itself."""
    monkeypatch.setenv("GENODIFF_DATA", str(tmp_path_factory.mktemp("genodiff_cache")))
