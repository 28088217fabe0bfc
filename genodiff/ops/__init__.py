"""genodiff.ops — kernels with fallbacks: selective scan, causal depthwise conv, norms.

Nothing here imports CUDA-only packages (mamba-ssm, causal-conv1d) at module top: they are found with
:func:`importlib.util.find_spec` and imported lazily on the CUDA path.
"""

from __future__ import annotations

import torch

from genodiff.ops import _scan_numba
from genodiff.ops.conv import causal_conv1d, causal_conv1d_cuda_available
from genodiff.ops.norm import LayerNorm, RMSNorm, add_norm
from genodiff.ops.selective_scan import mamba_ssm_available, selective_scan, selective_scan_ref

__all__ = [
    "selective_scan", "selective_scan_ref", "causal_conv1d", "RMSNorm", "LayerNorm", "add_norm",
    "available_kernels",
]


def available_kernels() -> dict:
    """Which implementations can run here, without importing any CUDA package.

    Returns ``{"mamba_ssm_cuda": bool, "causal_conv1d_cuda": bool, "cpu_fast_scan": str | False,
    "torch_blocked_scan": True, "reference": True}``. A CUDA entry is True when its package is
    installed and torch sees a CUDA device (the kernel is then used for CUDA tensors);
    ``cpu_fast_scan`` names the fast CPU kernel (``"numba"``) or is False (pure-torch fallback).
    """
    cuda = torch.cuda.is_available()
    return {
        "mamba_ssm_cuda": cuda and mamba_ssm_available(),
        "causal_conv1d_cuda": cuda and causal_conv1d_cuda_available(),
        "cpu_fast_scan": "numba" if _scan_numba.available() else False,
        "torch_blocked_scan": True,
        "reference": True,
    }
