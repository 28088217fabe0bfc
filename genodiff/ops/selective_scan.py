"""Selective scan (Mamba S6) with exact ``mamba_ssm.selective_scan_fn`` semantics.

One public function, :func:`selective_scan`. Implementations (``backend=``, or the process-wide setting):

* ``"mamba_ssm"`` — mamba-ssm's CUDA kernel, when the package is installed and the tensors live on a CUDA
  device (imported lazily on first use, never at module top);
* ``"triton"``    — the fused Triton kernels (:mod:`genodiff.ops._scan_triton`): CUDA tensors, or CPU
  tensors under Triton's interpreter (``TRITON_INTERPRET=1``, for tests); chunked over time, states
  recomputed in the backward; variable B/C only;
* ``"numba"``     — the fast CPU kernel (:mod:`genodiff.ops._scan_numba`): numba-compiled forward and
  hand-written backward (reverse-time adjoint recurrence, states recomputed per channel), wrapped in
  a :class:`torch.autograd.Function`; variable B/C only;
* ``"torch"``     — pure-torch blocked scan (any device, any B/C);
* ``"reference"`` — float64 sequential recurrence, the oracle (:func:`selective_scan_ref`).

``"auto"`` picks by device: CUDA -> mamba_ssm when importable, else triton (variable B/C), else torch;
CPU -> numba (variable B/C) else torch; never triton on a CPU. The old names ``"cuda"`` (= mamba_ssm) and
``"blocked"`` (= torch) are still accepted.

Which backend a call without ``backend=`` uses is a process-wide setting: :func:`set_scan_backend` /
:func:`scan_backend` (a context manager) / :func:`configure_from` (a job's ``ops:`` config block). It is
kept in the environment variable ``GENODIFF_SCAN_BACKEND`` too, so worker processes started later (spawned
benchmark folds, DDP ranks) inherit it; the variable also sets the initial value.

Semantics (per batch ``b``, channel ``d``, state ``n``, time ``t``)::

    delta = softplus(delta + delta_bias) if delta_softplus else delta + delta_bias
    h[t, n] = exp(delta[t] * A[d, n]) * h[t-1, n] + delta[t] * B[t, n] * u[t]      (h[-1] = 0)
    y[t]    = sum_n C[t, n] * h[t, n]
    out     = (y + D[d] * u) * silu(z)        (each term only when given)

Internally float32 (float64 for float64 inputs and for the reference). ``out`` has u's dtype;
``last_state`` (batch, dim, dstate) is float32 (float64 for float64 inputs), like mamba_ssm.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from genodiff.errors import InputError
from genodiff.ops import _scan_numba, _scan_torch, _scan_triton
from genodiff.ops._optional import BackendUnavailableError, import_optional, package_available
from genodiff.ops.precision import compute_dtype

__all__ = ["selective_scan", "selective_scan_ref", "mamba_ssm_available", "BACKENDS", "set_scan_backend",
           "get_scan_backend", "scan_backend", "configure_from", "scan_backends_info"]

#: the backend names (``backend=`` and ``ops.scan_backend``)
BACKENDS = ("auto", "mamba_ssm", "triton", "numba", "torch", "reference")
_ALIASES = {"cuda": "mamba_ssm", "blocked": "torch"}  # names of earlier releases
ENV_VAR = "GENODIFF_SCAN_BACKEND"

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
# the process-wide backend setting


def _canonical(name) -> str:
    """``name`` as one of :data:`BACKENDS` (aliases resolved); ValueError with the allowed names otherwise."""
    key = str(name).strip().lower() if name is not None else "auto"
    key = _ALIASES.get(key, key)
    if key not in BACKENDS:
        raise ValueError(f"unknown scan backend {name!r} (choose from {', '.join(BACKENDS)})")
    return key


_setting = {"backend": "auto"}


def get_scan_backend() -> str:
    """The backend that :func:`selective_scan` calls without ``backend=`` use (``"auto"`` by default)."""
    return _setting["backend"]


def set_scan_backend(name: str) -> str:
    """Set the process-wide scan backend (one of :data:`BACKENDS`); returns the previous one.

    Also exported as ``GENODIFF_SCAN_BACKEND`` so that processes started afterwards inherit it."""
    new = _canonical(name)
    old = _setting["backend"]
    _setting["backend"] = new
    os.environ[ENV_VAR] = new
    return old


@contextlib.contextmanager
def scan_backend(name: str) -> Iterator[str]:
    """``with scan_backend("triton"): ...`` -- the setting for the block, restored afterwards."""
    old = set_scan_backend(name)
    try:
        yield get_scan_backend()
    finally:
        set_scan_backend(old)


def configure_from(ops_cfg: Optional[Mapping]) -> str:
    """Apply a job's ``ops:`` config block (``{"scan_backend": "auto"}``; None or a missing key: auto).

    Raises :class:`~genodiff.errors.InputError` (one line) for an unknown backend; returns the setting."""
    value = ops_cfg.get("scan_backend", "auto") if ops_cfg is not None else "auto"
    try:
        set_scan_backend("auto" if value is None else value)
    except ValueError as exc:
        raise InputError(f"ops.scan_backend: {exc}") from None
    return get_scan_backend()


def _initial_setting() -> None:
    value = os.environ.get(ENV_VAR, "")
    if value:
        try:
            _setting["backend"] = _canonical(value)
        except ValueError:  # a bad environment value must not break `import genodiff`; reported on use
            _setting["backend"] = value


_initial_setting()


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


def _auto(device_type: str, dtype: torch.dtype, var_bc: bool, mamba_usable) -> str:
    """What ``auto`` picks for tensors of this device type and dtype (``mamba_usable``: a callable)."""
    if device_type == "cuda":
        if dtype != torch.float64 and mamba_usable():
            return "mamba_ssm"
        if var_bc and _scan_triton.available():
            return "triton"
        return "torch"
    if device_type == "cpu" and var_bc and _numba_module() is not None:
        return "numba"
    return "torch"


def _choose_backend(u, Bk, Ck) -> str:
    """The backend ``auto`` picks for these tensors."""
    return _auto(u.device.type, u.dtype, Bk == "var" and Ck == "var", _load_mamba_fn)


def scan_backends_info() -> dict:
    """For ``genodiff info``: the setting, which backends can run here, and what ``auto`` picks for float32
    CPU and CUDA tensors with variable B/C. Imports no optional package (uses find_spec)."""
    cuda = torch.cuda.is_available()
    triton_ok = _scan_triton.available()
    usable = {
        "mamba_ssm": bool(cuda and mamba_ssm_available()),
        "triton": bool(triton_ok and (cuda or _scan_triton.interpreting())),
        "numba": _numba_module() is not None,
        "torch": True,
        "reference": True,
    }
    return {
        "setting": get_scan_backend(),
        "usable": usable,
        "auto_cpu": _auto("cpu", torch.float32, True, lambda: False),
        "auto_cuda": _auto("cuda", torch.float32, True, mamba_ssm_available),
        "triton_installed": triton_ok,
        "triton_interpreter": _scan_triton.interpreting(),
    }


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
    backend: Optional[str] = None,
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
        backend: None (the process-wide setting, :func:`get_scan_backend`), ``"auto"`` (by device, see
            the module doc) or one of ``"mamba_ssm"``, ``"triton"``, ``"numba"``, ``"torch"``,
            ``"reference"`` to force an implementation.

    Returns:
        out (batch, dim, L) in u's dtype, or ``(out, last_state)``; last_state is float32
        (float64 for float64 inputs). All paths are differentiable w.r.t. every tensor argument.
    """
    try:
        backend = _canonical(get_scan_backend() if backend is None else backend)
    except ValueError as exc:
        raise ValueError(f"selective_scan: {exc}") from None
    Bk, Bc, Ck, Cc = _check(u, delta, A, B, C, D, z, delta_bias)
    if backend == "auto":
        backend = _choose_backend(u, Bk, Ck)

    if backend == "mamba_ssm":
        fn = _load_mamba_fn()
        if not fn:
            raise BackendUnavailableError("selective_scan: backend='mamba_ssm' needs the mamba_ssm package")
        if not u.is_cuda:
            raise BackendUnavailableError("selective_scan: backend='mamba_ssm' needs CUDA tensors")
        return _call_mamba_scan(fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    if backend == "triton":
        _scan_triton.check_device(u)
        if Bk != "var" or Ck != "var":
            raise ValueError("selective_scan: backend='triton' needs variable (batch-dependent) B and C")
        out, last = _scan_triton.scan(u, delta, A, Bc, Cc, D, z, delta_bias, delta_softplus)
        return (out, last) if return_last_state else out

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
            raise BackendUnavailableError("selective_scan: backend='numba' needs numba")
        if u.device.type != "cpu":
            raise BackendUnavailableError("selective_scan: backend='numba' needs CPU tensors")
        if Bk != "var" or Ck != "var":
            raise ValueError("selective_scan: backend='numba' needs variable (batch-dependent) B and C")
        if Bc.shape[1] != Cc.shape[1]:  # the kernel takes one group count: expand both to the lcm
            G = math.lcm(Bc.shape[1], Cc.shape[1])
            Bc = Bc.repeat_interleave(G // Bc.shape[1], dim=1)
            Cc = Cc.repeat_interleave(G // Cc.shape[1], dim=1)
        y, last = mod.scan(uc, dt, Ac, Bc, Cc)
    elif backend == "torch":
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
