"""Text-path test fixtures (the one-thread rule for this folder is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Hugging Face Hub and an empty Hugging Face cache."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
