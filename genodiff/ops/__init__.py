"""genodiff.ops — kernels with fallbacks: selective scan, causal depthwise conv, norms.

Nothing here imports optional kernel packages (mamba-ssm, causal-conv1d, triton) at module top: they are
found with :func:`importlib.util.find_spec` and imported lazily on first use.

The selective scan's backend is a process-wide setting (``auto`` by default): :func:`set_scan_backend`,
the :func:`scan_backend` context manager, or :func:`configure_from` with a job's ``ops:`` config block.
"""

from __future__ import annotations

import torch

from genodiff.ops import _scan_numba, _scan_triton
from genodiff.ops.conv import causal_conv1d, causal_conv1d_cuda_available
from genodiff.ops.norm import LayerNorm, RMSNorm, add_norm
from genodiff.ops.selective_scan import (
    BACKENDS as SCAN_BACKENDS,
)
from genodiff.ops.selective_scan import (
    configure_from,
    get_scan_backend,
    mamba_ssm_available,
    scan_backend,
    scan_backends_info,
    selective_scan,
    selective_scan_ref,
    set_scan_backend,
)

__all__ = [
    "selective_scan", "selective_scan_ref", "causal_conv1d", "RMSNorm", "LayerNorm", "add_norm",
    "available_kernels", "SCAN_BACKENDS", "set_scan_backend", "get_scan_backend", "scan_backend", "configure_from",
    "scan_backends_info",
]


def available_kernels() -> dict:
    """Which implementations can run here, without importing any optional kernel package.

    Returns ``{"mamba_ssm_cuda": bool, "causal_conv1d_cuda": bool, "triton_scan": bool,
    "cpu_fast_scan": str | False, "torch_blocked_scan": True, "reference": True}``. A CUDA entry is True when
    its package is installed and torch sees a CUDA device (the kernel is then used for CUDA tensors);
    ``triton_scan`` is True when triton is installed and there is a CUDA device (or Triton's interpreter
    is on); ``cpu_fast_scan`` names the fast CPU kernel (``"numba"``) or is False (pure-torch fallback).
    """
    cuda = torch.cuda.is_available()
    return {
        "mamba_ssm_cuda": cuda and mamba_ssm_available(),
        "causal_conv1d_cuda": cuda and causal_conv1d_cuda_available(),
        "triton_scan": _scan_triton.available() and (cuda or _scan_triton.interpreting()),
        "cpu_fast_scan": "numba" if _scan_numba.available() else False,
        "torch_blocked_scan": True,
        "reference": True,
    }
