"""Forward-only (inference) path of a Mamba mixer on CPU: fused, time-major, no autograd.

A Mamba mixer between ``in_proj`` and ``out_proj`` is: causal depthwise conv + SiLU, ``x_proj`` to
``[dt_low | B | C]``, ``dt_proj`` + softplus, the selective scan, the ``D`` skip and the ``silu(z)`` gate.
The training path (:func:`genodiff.ops.selective_scan`) works channel-major (batch, D, L) and keeps what
the backward pass needs; sampling and scoring need neither. Here the tensors stay time-major (batch, L, D)
as the projections produce them (no transposes or copies), the conv and the scan are numba kernels
vectorised over channels, and the reversed direction of a bidirectional layer runs the conv and the scan
against time instead of flipping its input and output.

Used by :meth:`genodiff.models.mamba.Mamba.ssm` when :func:`mixer_inference_applies`: float32 CPU tensors,
no gradient wanted, numba available, and the scan backend setting ``auto`` or ``numba`` (any other setting,
e.g. ``ops.scan_backend=torch``, keeps the general path). Outputs equal the general path's within float32
rounding (tests compare both with a float64 reference).
"""

from __future__ import annotations

import torch

from genodiff.ops import _scan_numba
from genodiff.ops.selective_scan import get_scan_backend

__all__ = ["mixer_inference", "mixer_inference_applies"]


def mixer_inference_applies(xz: torch.Tensor, *params: torch.Tensor) -> bool:
    """True when the fused inference path can serve this call: float32 CPU ``xz``, no autograd graph
    wanted (grad mode off, or nothing requires grad), numba usable, scan backend ``auto``/``numba``."""
    if xz.device.type != "cpu" or xz.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and (xz.requires_grad or any(p.requires_grad for p in params)):
        return False
    if any(p.dtype != torch.float32 for p in params):
        return False
    return get_scan_backend() in ("auto", "numba") and _scan_numba.available()


def mixer_inference(xz: torch.Tensor, conv_weight: torch.Tensor, conv_bias, x_proj_weight: torch.Tensor,
                    dt_proj_weight: torch.Tensor, dt_proj_bias: torch.Tensor, A: torch.Tensor, skip: torch.Tensor,
                    reverse: bool = False) -> torch.Tensor:
    """The mixer's output y (batch, L, D) from ``xz`` (batch, L, 2 D) = ``[x | z]``; ``A`` (D, N) = -exp(A_log).

    Shapes and semantics: :func:`genodiff.ops._scan_numba.mixer_inference`. ``reverse``: the mixer of the
    time-reversed sequence in forward coordinates. Float32 CPU tensors only (see :func:`mixer_inference_applies`).
    """
    if xz.dim() != 3 or xz.shape[-1] % 2:
        raise ValueError(f"mixer_inference: xz must be (batch, L, 2 * d_inner), got {tuple(xz.shape)}")
    return _scan_numba.mixer_inference(xz.detach(), conv_weight.detach(), None if conv_bias is None else
                                       conv_bias.detach(), x_proj_weight.detach(), dt_proj_weight.detach(),
                                       dt_proj_bias.detach(), A.detach(), skip.detach(), reverse)
