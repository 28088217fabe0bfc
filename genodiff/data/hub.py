"""Whether the Hugging Face Hub can be reached (offline machines get one clear error instead of a hang)."""

from __future__ import annotations

import os
import socket


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """False when ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set or ``host`` does not answer on 443."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
