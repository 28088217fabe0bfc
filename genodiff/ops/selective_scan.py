"""Selective scan (Mamba S6) with exact ``mamba_ssm.selective_scan_fn`` semantics.

One public function, :func:`selective_scan`; the implementation is chosen from the tensors' device:

* ``"cuda"``      — ``mamba_ssm``'s CUDA kernel, when the package is installed and the tensors live on a
  CUDA device (imported lazily on first use, never at module top);
* ``"numba"``     — the fast CPU kernel (:mod:`genodiff.ops._scan_numba`): numba-compiled forward and
  hand-written backward (reverse-time adjoint recurrence, states recomputed per channel), wrapped in
  a :class:`torch.autograd.Function`;
* ``"blocked"``   — pure-torch blocked scan (any device; used when numba is missing, on CUDA without
  mamba-ssm, and for constant B/C);
* ``"reference"`` — float64 sequential recurrence, the oracle (:func:`selective_scan_ref`).

Semantics (per batch ``b``, channel ``d``, state ``n``, time ``t``)::

    delta = softplus(delta + delta_bias) if delta_softplus else delta + delta_bias
    h[t, n] = exp(delta[t] * A[d, n]) * h[t-1, n] + delta[t] * B[t, n] * u[t]      (h[-1] = 0)
    y[t]    = sum_n C[t, n] * h[t, n]
    out     = (y + D[d] * u) * silu(z)        (each term only when given)

Internally float32 (float64 for float64 inputs and for the reference). ``out`` has u's dtype;
``last_state`` (batch, dim, dstate) is float32 (float64 for float64 inputs), like mamba_ssm.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from genodiff.ops import _scan_numba, _scan_torch
from genodiff.ops._optional import import_optional, package_available
from genodiff.ops.precision import compute_dtype

__all__ = ["selective_scan", "selective_scan_ref", "mamba_ssm_available", "BACKENDS"]

BACKENDS = ("auto", "cuda", "numba", "blocked", "reference")

_mamba_fn = None  # cached mamba_ssm selective_scan_fn, or False when unusable


def mamba_ssm_available() -> bool:
    """True when ``mamba_ssm`` is importable (checked with find_spec; nothing is imported)."""
    return package_available("mamba_ssm")


def _load_mamba_fn():
    global _mamba_fn
    if _mamba_fn is None:
        _mamba_fn = import_optional("mamba_ssm", "mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
    return _mamba_fn


def _call_mamba_scan(fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """Call ``mamba_ssm``'s ``selective_scan_fn`` by keyword (its parameter names since mamba-ssm 1.0)."""
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
              return_last_state=return_last_state)


def _numba_module():
    """The numba kernel module, or None when numba is unavailable (result cached)."""
    return _scan_numba if _scan_numba.available() else None


# --------------------------------------------------------------------------------------------------
# argument checking / canonical shapes


def _canon_bc(X: torch.Tensor, name: str, batch: int, dim: int, N: int, L: int):
    """B/C -> ("var", (batch, G, N, L)) or ("const", (dim, N))."""
    if X.dim() == 2:
        if tuple(X.shape) != (dim, N):
            raise ValueError(f"selective_scan: constant {name} must be (dim, dstate)=({dim}, {N}), "
                             f"got {tuple(X.shape)}")
        if X.is_complex():
            raise ValueError(f"selective_scan: complex {name} is not supported")
        return "const", X
    if X.dim() == 3:
        X = X.unsqueeze(1)
    if X.dim() != 4 or X.shape[0] != batch or X.shape[2] != N or X.shape[3] != L:
        raise ValueError(f"selective_scan: {name} must be (batch, dstate, L)=({batch}, {N}, {L}) or "
                         f"(batch, groups, dstate, L), got {tuple(X.shape)}")
    G = X.shape[1]
    if G < 1 or dim % G != 0:
        raise ValueError(f"selective_scan: {name} groups={G} must divide dim={dim}")
    if X.is_complex():
        raise ValueError(f"selective_scan: complex {name} is not supported")
    return "var", X


def _check(u, delta, A, B, C, D, z, delta_bias):
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, dim, L), got {tuple(u.shape)}")
    batch, dim, L = u.shape
    if tuple(delta.shape) != (batch, dim, L):
        raise ValueError(f"selective_scan: delta must have u's shape {tuple(u.shape)}, "
                         f"got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (dim, dstate) with dim={dim}, got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (real Mamba only)")
    N = A.shape[1]
    Bk, Bc = _canon_bc(B, "B", batch, dim, N, L)
    Ck, Cc = _canon_bc(C, "C", batch, dim, N, L)
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"selective_scan: {name} must be ({dim},), got {tuple(t.shape)}")
    if z is not None and tuple(z.shape) != (batch, dim, L):
        raise ValueError(f"selective_scan: z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")
    return Bk, Bc, Ck, Cc


def _finish(y, u, D, z, out_dtype):
    cd = y.dtype
    out = y if D is None else y + D.to(cd)[:, None] * u.to(cd)
    if z is not None:
        out = out * F.silu(z.to(cd))
    return out.to(out_dtype)


# --------------------------------------------------------------------------------------------------
# public entry points


def _choose_backend(u, Bk, Ck) -> str:
    if u.is_cuda and u.dtype != torch.float64 and _load_mamba_fn():
        return "cuda"
    if u.device.type == "cpu" and Bk == "var" and Ck == "var" and _numba_module() is not None:
        return "numba"
    return "blocked"


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    backend: str = "auto",
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Selective scan with ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` semantics.

    Args:
        u: (batch, dim, L) input.
        delta: (batch, dim, L) step sizes (before ``delta_bias`` / softplus).
        A: (dim, dstate) real state matrix (diagonal per channel; usually negative).
        B: (batch, dstate, L) or (batch, groups, dstate, L) input-dependent, or (dim, dstate) constant.
        C: same shapes as B.
        D: (dim,) skip connection or None.
        z: (batch, dim, L) gate or None; output is multiplied by ``silu(z)``.
        delta_bias: (dim,) added to delta or None.
        delta_softplus: apply softplus (torch default: threshold 20) to ``delta + delta_bias``.
        return_last_state: also return the final state h[L-1] of shape (batch, dim, dstate).
        backend: ``"auto"`` (by device, see module doc) or one of ``"cuda"``, ``"numba"``,
            ``"blocked"``, ``"reference"`` to force an implementation.

    Returns:
        out (batch, dim, L) in u's dtype, or ``(out, last_state)``; last_state is float32
        (float64 for float64 inputs). All paths are differentiable w.r.t. every tensor argument.
    """
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: backend must be one of {BACKENDS}, got {backend!r}")
    Bk, Bc, Ck, Cc = _check(u, delta, A, B, C, D, z, delta_bias)
    if backend == "auto":
        backend = _choose_backend(u, Bk, Ck)

    if backend == "cuda":
        fn = _load_mamba_fn()
        if not fn:
            raise RuntimeError("selective_scan: backend='cuda' needs the mamba_ssm package")
        if not u.is_cuda:
            raise RuntimeError("selective_scan: backend='cuda' needs CUDA tensors")
        return _call_mamba_scan(fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    cd = torch.float64 if backend == "reference" else compute_dtype(u.dtype)
    dt = delta.to(cd)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cd)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uc, Ac = u.to(cd), A.to(cd)
    Bc, Cc = Bc.to(cd), Cc.to(cd)

    if backend == "reference":
        y, last = _scan_torch.scan_sequential(uc, dt, Ac, Bk, Bc, Ck, Cc)
    elif backend == "numba":
        mod = _numba_module()
        if mod is None:
            raise RuntimeError("selective_scan: backend='numba' needs numba")
        if u.device.type != "cpu":
            raise RuntimeError("selective_scan: backend='numba' needs CPU tensors")
        if Bk != "var" or Ck != "var":
            raise ValueError("selective_scan: backend='numba' needs variable (batch-dependent) B and C")
        if Bc.shape[1] != Cc.shape[1]:  # the kernel takes one group count: expand both to the lcm
            G = math.lcm(Bc.shape[1], Cc.shape[1])
            Bc = Bc.repeat_interleave(G // Bc.shape[1], dim=1)
            Cc = Cc.repeat_interleave(G // Cc.shape[1], dim=1)
        y, last = mod.scan(uc, dt, Ac, Bc, Cc)
    elif backend == "blocked":
        y, last = _scan_torch.scan_blocked(uc, dt, Ac, Bk, Bc, Ck, Cc)
    else:  # pragma: no cover
        raise AssertionError(backend)
    out = _finish(y, u, D, z, u.dtype)
    return (out, last) if return_last_state else out


def selective_scan_ref(*args, **kwargs) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Float64 sequential selective scan — the oracle: :func:`selective_scan` (same arguments) with
    ``backend="reference"``.

    Differentiable through torch autograd. ``out`` is returned in u's dtype, ``last_state`` in
    float64 (pass float64 inputs to get the full-precision output too).
    """
    return selective_scan(*args, backend="reference", **kwargs)
