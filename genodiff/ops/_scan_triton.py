"""Fused selective scan in Triton: forward and backward kernels, no compile step beyond Triton's JIT.

The kernels (:mod:`genodiff.ops._triton_kernels`) take the raw inputs and do everything mamba-ssm's
``selective_scan_fn`` does: softplus(delta + delta_bias), the recurrence in float32 (float64 for float64
inputs) with B/C varying in time and shared by groups of channels, ``y = sum_n C h``, the D skip, the SiLU(z)
gate and the optional last state. Inputs may be float32, bfloat16 or float16 (each tensor its own dtype);
``out`` has u's dtype and every gradient its input's dtype.

Memory: the forward keeps only the state entering each chunk of ``chunk`` time steps, (batch, dim,
n_chunks, dstate) in float32 (for L = 131,072 and chunk 64: 2,048 states per channel); the backward
recomputes the states of one chunk at a time from it, so nothing of size (batch, dim, L, dstate) exists.

Where it runs: CUDA tensors (the GPU path), or CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``
set before triton is first imported; that is how the tests run it). triton is imported on first use only.
Under the interpreter, :func:`_fast_interpreter_scans` replaces the interpreter's element-by-element
``associative_scan`` for this module's combine function by a log-depth (Hillis-Steele) evaluation of the same
combine function on whole tiles (and ``reduce`` with ``add_combine`` by one numpy sum); the result is the
same scan, about 100 times faster under the interpreter, and nothing changes on a GPU.

Tuning: :data:`CONFIG` holds the chunk length (``None``: :func:`default_chunk`) and the warps per program of
the forward and backward kernels; perf/gpu_run.py sweeps them on the GPU. Compiled for sm_90 on the CPU
(perf/triton_resources.py, triton 3.9) the default (chunk 64 for dstate 16, 4 warps) needs 114 registers
per thread in the forward and 208 in the backward, without spills; chunk 128 with 4 warps spills in the
backward.
"""

from __future__ import annotations

import importlib
import os
from typing import Optional

import numpy as np
import torch

from genodiff.ops._optional import BackendUnavailableError, package_available

__all__ = ["available", "interpreting", "check_device", "scan", "CONFIG", "default_chunk"]

#: chunk: time steps per chunk (power of two >= 16; None: default_chunk); warps per program of each kernel
CONFIG = {"chunk": None, "num_warps": 4, "num_warps_bwd": 4}
_state: dict = {"kernels": None, "patched": False}


def available() -> bool:
    """True when triton is importable (checked with find_spec; nothing is imported)."""
    return package_available("triton")


def interpreting() -> bool:
    """True when Triton's interpreter is requested (``TRITON_INTERPRET=1``): kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(u: torch.Tensor) -> None:
    """Raise a one-line :class:`BackendUnavailableError` (a RuntimeError) when the Triton scan cannot run on u."""
    if not available():
        raise BackendUnavailableError("selective_scan: backend='triton' needs the triton package "
                                      "(pip install 'genodiff[gpu]'; CUDA builds of torch ship it)")
    if u.is_cuda or (u.device.type == "cpu" and interpreting()):
        return
    raise BackendUnavailableError(f"selective_scan: backend='triton' needs CUDA tensors (got {u.device.type}); "
                                  "on a CPU it runs only under Triton's interpreter (TRITON_INTERPRET=1 set "
                                  "before triton is imported)")


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def default_chunk(L: int, dstate: int) -> int:
    """Time steps per chunk: a (dstate, chunk) tile of about 1,024 elements (8 per thread with 4 warps),
    16 to 256 steps, at most the sequence rounded up to a power of two."""
    per_tile = min(256, max(16, 1024 // _next_pow2(dstate)))
    return max(16, min(per_tile, _next_pow2(L)))


def _fast_interpreter_scans(kernels) -> None:
    """Under the interpreter, evaluate ``associative_scan`` with ``lin_combine`` in log2(n) whole-tile
    combine calls (Hillis-Steele) instead of one Python call per element, and ``reduce`` with
    ``add_combine`` with one numpy sum. Same combine functions, same semantics (``reverse``: flip, scan,
    flip, as the interpreter and the GPU do). A no-op when the interpreter's internals are not the expected
    ones (the kernels then run at the interpreter's own, much slower, pace)."""
    if _state["patched"]:
        return
    _state["patched"] = True
    try:
        from triton.runtime import interpreter as interp  # noqa: PLC0415 - optional package

        scan_ops = interp.ScanOps
        slow = scan_ops.generic_scan
    except (ImportError, AttributeError):  # pragma: no cover - other triton versions
        return
    combine = kernels.lin_combine

    def generic_scan(self, input):
        if self.combine_fn is not combine:
            return slow(self, input)
        axis = self.axis
        cur = [np.moveaxis(np.array(x.handle.data), axis, -1) for x in input]
        size = cur[0].shape[-1]
        off = 1
        while off < size:
            # element i combines with element i - off (rolled into place; the wrapped-around first `off`
            # results are discarded, those elements are already complete): whole power-of-two tiles
            left = [self.to_tensor(np.ascontiguousarray(np.roll(a, off, axis=-1)), x.dtype) for a, x in zip(cur, input)]
            right = [self.to_tensor(np.ascontiguousarray(a), x.dtype) for a, x in zip(cur, input)]
            res = self.combine_fn.fn(*left, *right)
            res = res if isinstance(res, tuple) else (res,)
            nxt = [a.copy() for a in cur]
            for a, r in zip(nxt, res):
                a[..., off:] = r.handle.data[..., off:]
            cur = nxt
            off *= 2
        return [self.to_tensor(np.ascontiguousarray(np.moveaxis(a, -1, axis)), x.dtype) for a, x in zip(cur, input)]

    generic_scan.__wrapped__ = slow
    scan_ops.generic_scan = generic_scan

    reduce_ops = getattr(interp, "ReduceOps", None)
    slow_reduce = getattr(reduce_ops, "generic_reduce", None)
    if slow_reduce is None:  # pragma: no cover - other triton versions
        return
    add = kernels.add_combine

    def generic_reduce(self, input):
        if self.combine_fn is not add or len(input) != 1:
            return slow_reduce(self, input)
        data = np.sum(input[0].handle.data, axis=self.axis, keepdims=bool(getattr(self, "keep_dims", False)))
        return [self.to_tensor(data, input[0].dtype)]

    generic_reduce.__wrapped__ = slow_reduce
    reduce_ops.generic_reduce = generic_reduce


def _kernels():
    if _state["kernels"] is None:
        kernels = importlib.import_module("genodiff.ops._triton_kernels")
        if interpreting():
            _fast_interpreter_scans(kernels)
        _state["kernels"] = kernels
    return _state["kernels"]


def _acc(dtype: torch.dtype):
    import triton.language as tl  # noqa: PLC0415 - optional package

    return tl.float64 if dtype == torch.float64 else tl.float32


def _c(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.contiguous()


class _TritonScan(torch.autograd.Function):
    """(u, delta, A, B, C, D, z, delta_bias) -> (out, last_state); B, C: (batch, groups, N, L)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, chunk, num_warps, need_grad):
        warps_fwd, warps_bwd = num_warps
        k = _kernels()
        u, delta, A, B, C, D, z, delta_bias = (_c(t) for t in (u, delta, A, B, C, D, z, delta_bias))
        batch, dim, L = u.shape
        N = A.shape[1]
        acc_dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        n_chunks = -(-L // chunk) if L else 0
        out = torch.empty_like(u)
        last = torch.zeros(batch, dim, N, dtype=acc_dtype, device=u.device)
        hin = torch.empty(batch, dim, n_chunks if need_grad else 0, N, dtype=acc_dtype, device=u.device)
        if L and batch and dim:
            k.scan_fwd_kernel[(dim, batch)](
                u, delta, A, B, C, u if D is None else D, u if z is None else z,
                u if delta_bias is None else delta_bias, out, last, hin,
                dim, L, N, n_chunks, dim // B.shape[1], dim // C.shape[1], B.shape[1], C.shape[1],
                HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(softplus),
                SAVE_STATES=need_grad, STORE_LAST=True,
                BLOCK_N=_next_pow2(N), BLOCK_T=chunk, ACC=_acc(u.dtype), num_warps=warps_fwd)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, hin)
        ctx.cfg = (bool(softplus), chunk, warps_bwd)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        k = _kernels()
        u, delta, A, B, C, D, z, delta_bias, hin = ctx.saved_tensors
        softplus, chunk, num_warps = ctx.cfg
        batch, dim, L = u.shape
        N = A.shape[1]
        acc_dtype = hin.dtype
        dev = u.device
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dA = torch.zeros(batch, dim, N, dtype=acc_dtype, device=dev)
        dD = torch.zeros(batch, dim, dtype=acc_dtype, device=dev)
        dbias = torch.zeros(batch, dim, dtype=acc_dtype, device=dev)
        dB = torch.zeros(B.shape, dtype=acc_dtype, device=dev)
        dC = torch.zeros(C.shape, dtype=acc_dtype, device=dev)
        if L and batch and dim:
            k.scan_bwd_kernel[(dim, batch)](
                u, delta, A, B, C, u if D is None else D, u if z is None else z,
                u if delta_bias is None else delta_bias, hin, dout,
                dA if dlast is None else dlast.to(acc_dtype).contiguous(),
                du, ddelta, du if dz is None else dz, dA, dD, dbias, dB, dC,
                dim, L, N, hin.shape[2], dim // B.shape[1], dim // C.shape[1], B.shape[1], C.shape[1],
                HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
                HAS_DLAST=dlast is not None,
                BLOCK_N=_next_pow2(N), BLOCK_T=chunk, ACC=_acc(u.dtype), num_warps=num_warps)
        else:
            du.zero_(), ddelta.zero_()
            if dz is not None:
                dz.zero_()
        return (du, ddelta, dA.sum(0).to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                None if D is None else dD.sum(0).to(D.dtype), dz,
                None if delta_bias is None else dbias.sum(0).to(delta_bias.dtype), None, None, None, None)


def scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *, chunk=None):
    """Fused selective scan. B, C: (batch, groups, N, L) (groups may differ between B and C).

    Returns ``(out, last_state)``: out (batch, dim, L) in u's dtype; last_state (batch, dim, N) in float32
    (float64 for float64 u). Differentiable w.r.t. every tensor argument (last_state too).
    """
    check_device(u)
    L, N = u.shape[-1], A.shape[1]
    chunk = int(chunk or CONFIG["chunk"] or default_chunk(L, N))
    if chunk < 16 or chunk & (chunk - 1):
        raise ValueError(f"selective_scan: triton chunk must be a power of two >= 16, got {chunk}")
    # chunk states are kept only when a backward can follow (inside forward grad mode is always off)
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    warps = (int(CONFIG["num_warps"]), int(CONFIG["num_warps_bwd"]))
    return _TritonScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), chunk, warps, need_grad)
