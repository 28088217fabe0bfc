import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    env = os.environ.get("GENODIFF_SHARED")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def parity_root() -> Path:
    root = shared_dir() / "fixtures" / "caduceus_parity"
    if not (root / "ph_small" / "model.safetensors").is_file():
        pytest.skip(f"Caduceus parity fixtures not found under {root} (set GENODIFF_SHARED)")
    return root
