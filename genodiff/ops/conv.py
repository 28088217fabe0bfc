"""Causal depthwise 1-D convolution (the short conv in a Mamba block).

``causal_conv1d`` dispatches on the tensor's device: the ``causal_conv1d`` CUDA package when it is
installed and the input lives on a CUDA device (imported lazily, never at module top); on a CPU, float32 /
float64 tensors go through numba kernels for the forward and the backward
(:func:`genodiff.ops._scan_numba.causal_conv`: one task per (batch, channel) row, the SiLU fused and its
pre-activation recomputed in the backward); anything else uses :func:`causal_conv1d_ref`
(:func:`torch.nn.functional.conv1d` with left padding), whose oneDNN depthwise backward took 0.1 to
15 s per call here, depending on what else the cores were doing (perf/README.md).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from genodiff.ops import _scan_numba
from genodiff.ops._optional import import_optional, package_available

__all__ = ["causal_conv1d", "causal_conv1d_ref", "causal_conv1d_cuda_available"]

_ACTIVATIONS = (None, "silu", "swish")
_cuda_fn = None  # cached causal_conv1d.causal_conv1d_fn (or False when unusable)


def causal_conv1d_cuda_available() -> bool:
    """True when the ``causal_conv1d`` package is importable (does not import it)."""
    return package_available("causal_conv1d")


def _call_causal_conv1d(fn, x, weight, bias, activation):
    """Call ``causal_conv1d_fn`` with ``activation`` by keyword: in current causal-conv1d releases the fourth
    positional parameter is ``seq_idx``, so a positional ``activation`` would be taken for it."""
    return fn(x, weight, bias, activation=activation)


def _load_cuda_fn():
    global _cuda_fn
    if _cuda_fn is None:
        _cuda_fn = import_optional("causal_conv1d", "causal_conv1d", "causal_conv1d_fn")
    return _cuda_fn


def _check(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    if x.dim() != 3:
        raise ValueError(f"causal_conv1d: x must be (batch, dim, L), got shape {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"causal_conv1d: weight must be (dim, width) with dim={x.shape[1]}, got {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"causal_conv1d: bias must be ({x.shape[1]},), got {tuple(bias.shape)}")


def causal_conv1d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    activation: Optional[str] = None,
) -> torch.Tensor:
    """Pure-torch causal depthwise conv: ``out[b, d, t] = bias[d] + sum_k weight[d, k] * x[b, d, t-K+1+k]``.

    x: (batch, dim, L); weight: (dim, K); bias: (dim,) or None; returns (batch, dim, L) in x's dtype,
    followed by SiLU when ``activation`` is ``"silu"``/``"swish"``.
    """
    _check(x, weight, bias, activation)
    dim, width = weight.shape
    seqlen = x.shape[-1]
    out = F.conv1d(x, weight.to(x.dtype).unsqueeze(1), None if bias is None else bias.to(x.dtype),
                   padding=width - 1, groups=dim)
    out = out[..., :seqlen]
    if activation is not None:
        out = F.silu(out)
    return out


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    activation: Optional[str] = None,
) -> torch.Tensor:
    """Causal depthwise conv1d with optional SiLU, same semantics as ``causal_conv1d.causal_conv1d_fn``.

    Args:
        x: (batch, dim, L).
        weight: (dim, width) — one filter per channel; output at t sees x[..., t-width+1 .. t].
        bias: (dim,) or None.
        activation: None, ``"silu"`` or ``"swish"`` (same as silu).

    Returns:
        (batch, dim, L) in x's dtype. Uses the CUDA kernel when ``x`` is on CUDA and the
        ``causal_conv1d`` package is installed (widths 2..4 only), the numba kernels for float32 / float64
        CPU tensors (unless ``GENODIFF_DISABLE_NUMBA`` is set), else :func:`causal_conv1d_ref`. The numba
        path computes in the inputs' dtype (CPU autocast does not lower it; genodiff trains in float32 on
        CPUs) and its backward is not differentiable again (no double backward).
    """
    _check(x, weight, bias, activation)
    if x.is_cuda and 2 <= weight.shape[1] <= 4:
        fn = _load_cuda_fn()
        if fn:  # pragma: no cover - CUDA only
            return _call_causal_conv1d(fn, x, weight, bias, activation)
    if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
            and (bias is None or bias.dtype == x.dtype) and _scan_numba.available()):
        return _scan_numba.causal_conv(x, weight, bias, activation is not None)
    return causal_conv1d_ref(x, weight, bias, activation)
