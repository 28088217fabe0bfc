"""The fused Mamba mixer on CPU: time-major numba kernels for inference and for training.

A Mamba mixer between ``in_proj`` and ``out_proj`` is: causal depthwise conv + SiLU, ``x_proj`` to
``[dt_low | B | C]``, ``dt_proj`` + softplus, the selective scan, the ``D`` skip and the ``silu(z)`` gate.
The general path (:func:`genodiff.ops.selective_scan` and :func:`genodiff.ops.causal_conv1d`) works
channel-major (batch, D, L), so it transposes and copies around its kernels and leaves the softplus, skip and
gate to separate torch passes. Here the tensors stay time-major (batch, L, D) as the projections produce them,
the conv and the scan (with ``dt_proj``, softplus, skip and gate) are numba kernels vectorised over channels,
and the reversed direction of a bidirectional layer runs the conv and the scan against time instead of flipping
its input and output.

* :func:`mixer_inference` -- forward only, nothing kept (sampling, scoring).
* :func:`mixer_train` -- the same forward, keeping dt and the scan state every 16 steps, with a hand-written
  backward: the scan's adjoint recomputes the states a chunk at a time and also gives ``dt_proj``'s
  gradients; ``x_proj``'s are two matmuls; the conv's backward is a kernel.

:meth:`genodiff.models.mamba.Mamba.ssm` uses them when :func:`mixer_inference_applies` /
:func:`mixer_train_applies`: float32 CPU tensors, numba available, no CPU autocast, and the scan backend setting
``auto`` or ``numba`` (any other setting, e.g. ``ops.scan_backend=torch``, keeps the general path). Outputs and
gradients equal the general path's within float32 rounding (tests compare both with a float64 reference).
"""

from __future__ import annotations

import torch

from genodiff.ops import _scan_numba
from genodiff.ops.selective_scan import get_scan_backend

__all__ = ["mixer_inference", "mixer_inference_applies", "mixer_train", "mixer_train_applies"]


def _fused_applies(xz: torch.Tensor, params) -> bool:
    """float32 CPU tensors, numba usable, scan backend ``auto``/``numba``, no CPU autocast."""
    if xz.device.type != "cpu" or xz.dtype != torch.float32:
        return False
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    return get_scan_backend() in ("auto", "numba") and _scan_numba.available()


def _wants_grad(xz: torch.Tensor, params) -> bool:
    """True when the call records an autograd graph: grad mode on and ``xz`` or a parameter requires grad."""
    return torch.is_grad_enabled() and (xz.requires_grad or any(p.requires_grad for p in params))


def mixer_inference_applies(xz: torch.Tensor, *params: torch.Tensor) -> bool:
    """True when the fused inference path can serve this call: float32 CPU ``xz`` and parameters, no autograd
    graph wanted (grad mode off, or nothing requires grad), numba usable, scan backend ``auto``/``numba``,
    no CPU autocast."""
    return not _wants_grad(xz, params) and _fused_applies(xz, params)


def mixer_train_applies(xz: torch.Tensor, *params: torch.Tensor) -> bool:
    """True when the fused training path (:func:`mixer_train`) serves this call: as
    :func:`mixer_inference_applies`, but with an autograd graph wanted."""
    return _wants_grad(xz, params) and _fused_applies(xz, params)


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


def mixer_train(xz: torch.Tensor, conv_weight: torch.Tensor, conv_bias, x_proj_weight: torch.Tensor,
                dt_proj_weight: torch.Tensor, dt_proj_bias: torch.Tensor, A: torch.Tensor, skip: torch.Tensor,
                reverse: bool = False) -> torch.Tensor:
    """:func:`mixer_inference` with autograd: y (batch, L, D), differentiable w.r.t. ``xz`` and every parameter.

    Time-major numba kernels for the conv and the scan with hand-written backward kernels
    (:func:`genodiff.ops._scan_numba.mixer_train`); ``A`` must be negative (it is -exp(A_log)). Float32 CPU
    tensors only (see :func:`mixer_train_applies`); the backward is not differentiable again.
    """
    if xz.dim() != 3 or xz.shape[-1] % 2:
        raise ValueError(f"mixer_train: xz must be (batch, L, 2 * d_inner), got {tuple(xz.shape)}")
    return _scan_numba.mixer_train(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A,
                                   skip, reverse)
