"""genodiff.ops — kernels with fallbacks: selective scan, causal depthwise conv, norms.

Nothing here imports CUDA-only packages (mamba-ssm, causal-conv1d) at module top: they are found with
:func:`importlib.util.find_spec` and imported lazily on the CUDA path.
"""

from __future__ import annotations

import importlib.util

from genodiff.ops.conv import causal_conv1d
from genodiff.ops.norm import LayerNorm, RMSNorm, add_norm
from genodiff.ops.selective_scan import selective_scan, selective_scan_ref

__all__ = [
    "selective_scan", "selective_scan_ref", "causal_conv1d", "RMSNorm", "LayerNorm", "add_norm",
    "available_kernels",
]


def _has(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_kernels() -> dict:
    """Which implementations can run here, without importing any CUDA package.

    Returns ``{"mamba_ssm_cuda": bool, "causal_conv1d_cuda": bool, "cpu_fast_scan": str | False,
    "torch_blocked_scan": True, "reference": True}``. A CUDA entry is True when its package is
    installed and torch sees a CUDA device (the kernel is then used for CUDA tensors);
    ``cpu_fast_scan`` names the fast CPU kernel (``"numba"``) or is False (pure-torch fallback).
    """
    import torch  # noqa: PLC0415

    from genodiff.ops import _scan_numba  # noqa: PLC0415

    cuda = torch.cuda.is_available()
    return {
        "mamba_ssm_cuda": cuda and _has("mamba_ssm"),
        "causal_conv1d_cuda": cuda and _has("causal_conv1d"),
        "cpu_fast_scan": "numba" if _scan_numba.available() else False,
        "torch_blocked_scan": True,
        "reference": True,
    }
