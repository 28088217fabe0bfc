"""RMSNorm / LayerNorm with the fused add+norm semantics of ``mamba_ssm`` (pure torch).

Semantics of the fused residual add (``mamba_ssm.ops.triton.layer_norm`` with ``prenorm=True``)::

    s = x + residual            (s = x when residual is None), computed in float32 (or wider)
    normed = norm(s)            computed in float32 (or wider), returned in x's dtype
    new_residual = s            in float32 when residual_in_fp32, else residual's dtype (x's if None)

The modules keep the parameter names of ``mamba_ssm`` / ``torch.nn.LayerNorm`` (``weight``, ``bias``,
``eps``) so published checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from genodiff.ops.precision import compute_dtype

__all__ = ["RMSNorm", "LayerNorm", "add_norm", "rms_norm", "layer_norm"]


def rms_norm(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float = 1e-5,
             bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x * rsqrt(mean(x^2, -1) + eps) * weight (+ bias)`` over the last dim, computed in float32+.

    x: (..., H); weight, bias: (H,) or None. Returns x's shape and dtype.
    """
    cd = compute_dtype(x.dtype)
    xf = x.to(cd)
    out = xf * torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.to(cd)
    if bias is not None:
        out = out + bias.to(cd)
    return out.to(x.dtype)


def layer_norm(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
               eps: float = 1e-5) -> torch.Tensor:
    """Standard LayerNorm over the last dim, computed in float32+. x: (..., H); returns x's dtype."""
    cd = compute_dtype(x.dtype)
    w = None if weight is None else weight.to(cd)
    b = None if bias is None else bias.to(cd)
    return F.layer_norm(x.to(cd), (x.shape[-1],), w, b, eps).to(x.dtype)


class _Norm(nn.Module):
    """What RMSNorm and LayerNorm share: ``weight`` (H,) initialised to ones, an optional ``bias`` (H,)
    initialised to zeros, ``eps``, and the ``forward(x, residual=None, prenorm=False, residual_in_fp32=False)``
    contract: with ``prenorm`` returns ``(normed, new_residual)`` as in :func:`add_norm`, else ``normed``
    only. x: (..., H). Subclasses define :meth:`normalize`."""

    def __init__(self, hidden_size: int, eps: float, bias: bool, device=None, dtype=None):
        super().__init__()
        self.hidden_size = int(hidden_size)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False):
        if residual is None and not prenorm and not residual_in_fp32:
            return self.normalize(x)
        return add_norm(x, residual, self, prenorm=prenorm, residual_in_fp32=residual_in_fp32)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"


class RMSNorm(_Norm):
    """RMSNorm over the last dim (``mamba_ssm.ops.triton.layer_norm.RMSNorm`` semantics).

    Parameters: ``weight`` (H,), initialised to ones (``bias`` is None); attribute ``eps``.
    ``forward(x, residual=None, prenorm=False, residual_in_fp32=False)``: with ``prenorm`` returns
    ``(normed, new_residual)`` as in :func:`add_norm`, else ``normed`` only. x: (..., H).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__(hidden_size, eps, False, device, dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class LayerNorm(_Norm):
    """LayerNorm over the last dim with ``weight`` (ones) and ``bias`` (zeros) parameters and ``eps``.

    Same ``forward(x, residual=None, prenorm=False, residual_in_fp32=False)`` contract as :class:`RMSNorm`.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5, bias: bool = True, device=None, dtype=None):
        super().__init__(hidden_size, eps, bias, device, dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)


def _apply_norm(norm, s: torch.Tensor) -> torch.Tensor:
    if isinstance(norm, _Norm):
        return norm.normalize(s)
    if isinstance(norm, nn.LayerNorm):
        return layer_norm(s, norm.weight, norm.bias, norm.eps)
    return norm(s)  # any callable (e.g. nn.Identity)


def add_norm(
    x: torch.Tensor,
    residual: Optional[torch.Tensor],
    norm,
    prenorm: bool = True,
    residual_in_fp32: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Fused residual add + norm (``mamba_ssm`` ``layer_norm_fn``/``rms_norm_fn`` semantics).

    Args:
        x: (..., H) the block output (hidden states).
        residual: (..., H) running residual stream, or None (first block).
        norm: an :class:`RMSNorm` / :class:`LayerNorm` / ``torch.nn.LayerNorm`` (or any callable).
        prenorm: return ``(normed, new_residual)`` when True, else ``normed`` only.
        residual_in_fp32: keep the new residual in float32.

    Returns:
        ``normed`` = norm(x + residual) in x's dtype, computed in float32 (or float64 for float64
        input); ``new_residual`` = x + residual in float32 if ``residual_in_fp32`` else in
        residual's dtype (x's dtype when residual is None).
    """
    cd = compute_dtype(x.dtype if residual is None else torch.promote_types(x.dtype, residual.dtype))
    s = x.to(cd) if residual is None else x.to(cd) + residual.to(cd)
    normed = _apply_norm(norm, s).to(x.dtype)
    if not prenorm:
        return normed
    if residual_in_fp32:
        res_dtype = torch.float32 if cd == torch.float32 else cd
    else:
        res_dtype = x.dtype if residual is None else residual.dtype
    return normed, s.to(res_dtype)
