"""Fast CPU kernels wrapped for torch: the selective scan and the causal conv of the general path (channel-major,
numba forward and backward in :class:`torch.autograd.Function` s), and the fused time-major Mamba mixer
(:func:`mixer_inference`, :func:`mixer_train`; see :mod:`genodiff.ops.mixer`).

The general path's scan computes the core recurrence only (delta already biased/softplus-ed; D skip and z gate
are applied by the caller in torch, so their gradients come from torch autograd)::

    h[t, n] = exp(delta[t] A[d, n]) h[t-1, n] + delta[t] u[t] B[g, t, n],   y[t] = sum_n C[g, t, n] h[t, n]

Layouts passed to the kernels (all C-contiguous, one dtype: float32, or float64 for float64 inputs):
u, delta, y, du, ddelta: (batch, dim, L); A, dA: (dim, N); B, C: (batch, G, L, N) (time-major so the
inner loop over the state runs over contiguous memory); last, dlast: (batch, dim, N).

Forward: ``prange`` over (batch, dim) channels, one pass over time, state in registers/L1; nothing
but y and the last state is stored. Backward: ``prange`` over (batch, group, block of channels);
for each channel the states h[t] and decays exp(delta A) are recomputed into a thread-local (L, N)
buffer, then the adjoint ``g[t] = C[t] dy[t] + exp(delta[t+1] A) g[t+1]`` (seeded with dlast) runs
backwards in time producing du, ddelta, dA and per-block partial sums of dB, dC (summed over the
channels of a group in torch afterwards) — no atomics, no races.

Threads: the parallel kernels use ``min(torch.get_num_threads(), NUMBA_NUM_THREADS)`` threads. The
serial variants run instead for one thread, for problems below ``_SERIAL_BELOW`` state-steps (thread
wake-up would cost more than the work) and in a process forked after this one had started numba's
thread pool (GNU OpenMP is not fork-safe; numba would terminate the child). Results do not depend on
the variant except for the summation order of the dB/dC partial sums (a few float32 ulps).

numba is imported lazily (first call to :func:`available` / :func:`scan`); kernels are compiled
with ``cache=True`` so only the first process pays the compile (a few seconds per dtype/variant).
"""

from __future__ import annotations

import os
import threading

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from genodiff.ops import _numba_kernels as nk

_state = {"checked": False, "ok": False, "kernels": None, "error": None}
_PARTIAL_BYTES = 256 << 20  # cap on the extra memory of dB/dC partial sums in backward
_SERIAL_BELOW = 1 << 15  # batch*dim*L*dstate below which the serial kernels run
_DYNAMIC = True  # dynamic chunked scheduling of the prange loops (see _launch)
_lock = threading.Lock()  # one launch at a time (numba's workqueue layer is not thread-safe)


def available() -> bool:
    """True when numba is importable (the kernels compile on first use)."""
    if not _state["checked"]:
        _state["checked"] = True
        if os.environ.get("GENODIFF_DISABLE_NUMBA", "") not in ("", "0"):
            _state["ok"] = False
            _state["error"] = "disabled by GENODIFF_DISABLE_NUMBA"
        else:
            try:
                import numba  # noqa: F401, PLC0415

                _state["ok"] = True
            except Exception as exc:  # pragma: no cover - numba is a dependency
                _state["ok"] = False
                _state["error"] = repr(exc)
    return _state["ok"]


def _build():
    import numba  # noqa: PLC0415

    return {"fwd": nk.scan_fwd, "bwd": nk.scan_bwd, "fwd_serial": nk.scan_fwd_serial,
            "bwd_serial": nk.scan_bwd_serial, "conv_tm": nk.conv_silu_tm, "conv_tm_serial": nk.conv_silu_tm_serial,
            "conv_fwd": nk.conv_cm_fwd, "conv_fwd_serial": nk.conv_cm_fwd_serial,
            "conv_bwd": nk.conv_cm_bwd, "conv_bwd_serial": nk.conv_cm_bwd_serial,
            "conv_tm_bwd": nk.conv_tm_bwd, "conv_tm_bwd_serial": nk.conv_tm_bwd_serial,
            "scan_tm_fwd": nk.scan_tm_fwd, "scan_tm_fwd_serial": nk.scan_tm_fwd_serial,
            "scan_tm_bwd": nk.scan_tm_bwd, "scan_tm_bwd_serial": nk.scan_tm_bwd_serial, "numba": numba}


def _kernels():
    if _state["kernels"] is None:
        if not available():
            raise RuntimeError(f"numba unavailable: {_state['error']}")
        _state["kernels"] = _build()
    return _state["kernels"]


def _num_threads(numba) -> int:
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def _launch(k, name: str, nthreads: int, ntasks: int, *arrays, work: int | None = None) -> None:
    """Run kernel ``name`` (a key of :func:`_build` without ``_serial``): parallel variant, or the
    serial one for a single thread, for less than ``_SERIAL_BELOW`` units of ``work`` (default: state-steps of
    the scan arrays) and in a process forked after this one had started numba's thread pool (see
    _numba_kernels)."""
    pid = os.getpid()
    forked = _state.get("pool_pid") not in (None, pid)
    if work is None:
        work = arrays[0].size * arrays[2].shape[1]
    small = work < _SERIAL_BELOW  # thread wake-up costs more than the work
    with _lock:
        if nthreads > 1 and not forked and not small:
            _state["pool_pid"] = pid
            numba = k["numba"]
            numba.set_num_threads(nthreads)
            # hand out ~8 chunks per thread dynamically: on a shared machine a thread that loses its
            # core then delays only its current chunk, not a static 1/nthreads share
            old = numba.set_parallel_chunksize(max(1, ntasks // (8 * nthreads)) if _DYNAMIC else 0)
            try:
                k[name](*arrays)
            finally:
                numba.set_parallel_chunksize(old)
        else:
            k[name + "_serial"](*arrays)


def _np(t: torch.Tensor):
    return t.detach().numpy()


class _ScanFn(torch.autograd.Function):
    """(u, delta, A, Bt, Ct) -> (y, last); Bt/Ct are (batch, G, L, N) contiguous."""

    @staticmethod
    def forward(ctx, u, delta, A, Bt, Ct):
        k = _kernels()
        u, delta, A, Bt, Ct = (t.contiguous() for t in (u, delta, A, Bt, Ct))
        batch, dim, L = u.shape
        N = A.shape[1]
        y = torch.empty(batch, dim, L, dtype=u.dtype)
        last = torch.zeros(batch, dim, N, dtype=u.dtype)
        if u.numel() > 0:
            _launch(k, "fwd", _num_threads(k["numba"]), batch * dim,
                    _np(u), _np(delta), _np(A), _np(Bt), _np(Ct), y.numpy(), last.numpy())
        ctx.save_for_backward(u, delta, A, Bt, Ct)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        k = _kernels()
        u, delta, A, Bt, Ct = ctx.saved_tensors
        batch, dim, L = u.shape
        G, N = Bt.shape[1], A.shape[1]
        dt_ = u.dtype
        dy = torch.zeros_like(u) if dy is None else dy.to(dt_).contiguous()
        dlast = torch.zeros(batch, dim, N, dtype=dt_) if dlast is None else dlast.to(dt_).contiguous()
        nthreads = _num_threads(k["numba"])
        dpg = dim // G
        # enough independent tasks for the threads; each block owns its own dB/dC partial sums, so cap
        # the blocks to keep those partials under ~_PARTIAL_BYTES (long sequences, many threads)
        nblk = max(1, min(dpg, -(-8 * nthreads // max(1, batch * G))))
        per_blk = max(1, batch * G * L * N * u.element_size())
        nblk = max(1, min(nblk, _PARTIAL_BYTES // per_blk))
        du = torch.empty_like(u)
        ddelta = torch.empty_like(u)
        dA_part = torch.zeros(batch, dim, N, dtype=dt_)
        dB_part = torch.zeros(batch, G, nblk, L, N, dtype=dt_)
        dC_part = torch.zeros(batch, G, nblk, L, N, dtype=dt_)
        if u.numel() > 0:
            _launch(k, "bwd", nthreads, batch * G * nblk,
                    _np(u), _np(delta), _np(A), _np(Bt), _np(Ct), _np(dy), _np(dlast),
                    du.numpy(), ddelta.numpy(), dA_part.numpy(), dB_part.numpy(), dC_part.numpy())
        dA = dA_part.sum(0)
        dB = dB_part.sum(2) if nblk > 1 else dB_part[:, :, 0]
        dC = dC_part.sum(2) if nblk > 1 else dC_part[:, :, 0]
        return du, ddelta, dA, dB, dC


def scan(u, delta, A, B, C):
    """Core scan on CPU. u, delta: (batch, dim, L); A: (dim, N); B, C: (batch, G, N, L).

    All in one float dtype (float32 or float64). Returns y (batch, dim, L), last (batch, dim, N);
    differentiable w.r.t. all inputs.
    """
    Bt = B.transpose(-1, -2)
    Ct = C.transpose(-1, -2)
    y, last = _ScanFn.apply(u, delta, A, Bt, Ct)
    return y, last


class _ConvFn(torch.autograd.Function):
    """(x, weight, bias, silu) -> causal depthwise conv (+ SiLU); x (batch, D, L), weight (D, K), bias (D,)."""

    @staticmethod
    def forward(ctx, x, weight, bias, silu):
        k = _kernels()
        x, weight, bias = x.contiguous(), weight.contiguous(), bias.contiguous()
        out = torch.empty_like(x)
        batch, D = x.shape[:2]
        if x.numel() > 0:
            _launch(k, "conv_fwd", _num_threads(k["numba"]), batch * D, _np(x), _np(weight), _np(bias),
                    out.numpy(), bool(silu), work=x.numel() * weight.shape[1])
        ctx.silu = bool(silu)
        ctx.save_for_backward(x, weight, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        k = _kernels()
        x, weight, bias = ctx.saved_tensors
        batch, D = x.shape[:2]
        gy = gy.to(x.dtype).contiguous()
        gx = torch.empty_like(x)
        gw_part = torch.zeros(batch, D, weight.shape[1], dtype=x.dtype)
        gb_part = torch.zeros(batch, D, dtype=x.dtype)
        if x.numel() > 0:
            _launch(k, "conv_bwd", _num_threads(k["numba"]), batch * D, _np(x), _np(weight), _np(bias), _np(gy),
                    ctx.silu, gx.numpy(), gw_part.numpy(), gb_part.numpy(), work=x.numel() * weight.shape[1])
        return gx, gw_part.sum(0), gb_part.sum(0), None


def causal_conv(x, weight, bias, silu: bool):
    """Causal depthwise conv (+ SiLU) on CPU with numba forward and backward kernels, differentiable w.r.t.
    x, weight and bias. x: (batch, D, L); weight: (D, K); bias: (D,) or None (zeros, no gradient); one float
    dtype (float32 or float64). Returns (batch, D, L)."""
    if bias is None:
        return _ConvFn.apply(x, weight, torch.zeros(weight.shape[0], dtype=x.dtype), silu)
    return _ConvFn.apply(x, weight, bias, silu)


_ROW_BLOCK = 256  # channels per task of the time-major scans (all of a small model's channels: one task per row)
_TRAIN_CHUNK = 16  # steps between the training scan's saved states (the backward recomputes a chunk at a time)
_CONV_BWD_BLOCK = 64  # channels per task of the training conv's backward


def _channel_block(batch: int, D: int, nthreads: int, cap: int = _ROW_BLOCK) -> int:
    """Channels per task of the time-major scans: all of a row's channels (up to ``cap``) when the batch rows
    alone give every thread two tasks, else fewer, a multiple of 8 lanes."""
    per_row = max(1, -(-2 * nthreads // max(1, batch)))
    return min(cap, -(-(-(-D // per_row)) // 8) * 8)


def _mixer_forward(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip, reverse,
                   chunk: int):
    """The fused mixer's forward (shapes as in :func:`mixer_inference`), shared by inference and training.

    ``chunk`` 0 keeps nothing (inference); otherwise the scan also writes dt and the state every ``chunk`` steps.
    Returns ``y`` (batch, L, D) and, for the backward, ``(xz, u, x_dbl, dt, hck, wT, bias, dtwT, AT, AT2, block)``
    with the parameters in the kernels' layouts (``wT`` (K, D), ``dtwT`` (R, D), ``AT`` (N, D), ``AT2`` = AT
    log2(e)); dt and hck are empty when nothing is kept."""
    k = _kernels()
    nthreads = _num_threads(k["numba"])
    f32 = {"dtype": torch.float32}
    xz = xz.contiguous()
    batch, L, two_d = xz.shape
    D = two_d // 2
    N = A.shape[1]
    wT = conv_weight.t().float().contiguous()
    bias = conv_bias.float().contiguous() if conv_bias is not None else torch.zeros(D, **f32)
    dtwT = dt_proj_weight.t().float().contiguous()
    AT = A.t().float().contiguous()
    AT2 = AT * nk._LOG2E
    u = torch.empty(batch, L, D, **f32)
    if u.numel() > 0:
        _launch(k, "conv_tm", nthreads, batch * L, xz.numpy(), _np(wT), _np(bias), u.numpy(), bool(reverse),
                work=batch * L * D * wT.shape[0])
    x_dbl = F.linear(u, x_proj_weight)  # (batch, L, R + 2 N)
    y = torch.empty(batch, L, D, **f32)
    if chunk:
        dt = torch.empty(batch, L, D, **f32)
        hck = torch.empty(batch, max(1, -(-L // chunk)), N, D, **f32)
    else:
        dt, hck = torch.empty(0, 0, 0, **f32), torch.empty(0, 0, 0, 0, **f32)
    block = _channel_block(batch, D, nthreads)
    if y.numel() > 0:
        _launch(k, "scan_tm_fwd", nthreads, batch * -(-D // block), u.numpy(), _np(x_dbl), _np(dtwT),
                _np(dt_proj_bias.float().contiguous()), _np(AT2), _np(skip.float().contiguous()), xz.numpy(),
                bool(reverse), block, max(1, chunk), y.numpy(), dt.numpy(), hck.numpy(), work=batch * L * D * N)
    return y, (xz, u, x_dbl, dt, hck, wT, bias, dtwT, AT, AT2, block)


def mixer_inference(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip,
                    reverse: bool = False):
    """Forward-only Mamba mixer between ``in_proj`` and ``out_proj`` on float32 CPU tensors, time-major.

    xz: (batch, L, 2 D) = ``in_proj`` output ``[x | z]``; conv_weight: (D, K); conv_bias: (D,) or None;
    x_proj_weight: (dt_rank + 2 N, D); dt_proj_weight: (D, dt_rank); dt_proj_bias: (D,); A: (D, N);
    skip: (D,). Returns y (batch, L, D)::

        x = silu(conv(x)); [dt_low | B | C] = x_proj(x); dt = softplus(dt_proj(dt_low) + bias)
        y = (scan(x, dt, A, B, C) + skip * x) * silu(z)

    ``reverse``: the mixer applied to the time-reversed sequence, returned in forward coordinates
    (``flip(mixer(flip(xz)))`` without the flips). No autograd graph is recorded.
    """
    with torch.no_grad():
        y, _ = _mixer_forward(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip,
                              reverse, chunk=0)
    return y


class _MixerFn(torch.autograd.Function):
    """The Mamba mixer between ``in_proj`` and ``out_proj`` with its backward, time-major float32 on CPU.

    forward(xz (batch, L, 2 D), conv_weight (D, K), conv_bias (D,), x_proj_weight (R + 2 N, D),
    dt_proj_weight (D, R), dt_proj_bias (D,), A (D, N), skip (D,), reverse) -> y (batch, L, D); see
    :func:`mixer_train`."""

    @staticmethod
    def forward(ctx, xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip, reverse):
        y, kept = _mixer_forward(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip,
                                 reverse, chunk=_TRAIN_CHUNK)
        xz, u, x_dbl, dt, hck, wT, bias, dtwT, AT, AT2, block = kept
        ctx.reverse, ctx.chunk, ctx.block = bool(reverse), _TRAIN_CHUNK, block
        ctx.save_for_backward(xz, u, x_dbl, dt, hck, wT, bias, x_proj_weight, dtwT, dt_proj_bias, AT, AT2, skip)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        k = _kernels()
        nthreads = _num_threads(k["numba"])
        xz, u, x_dbl, dt, hck, wT, conv_bias, x_proj_weight, dtwT, dt_bias, AT, AT2, skip = ctx.saved_tensors
        batch, L, D = u.shape
        N, R, K, block = AT.shape[0], dtwT.shape[0], wT.shape[0], ctx.block
        nblk = -(-D // block)
        gy = gy.float().contiguous()
        f32 = {"dtype": torch.float32}
        new = torch.zeros if u.numel() == 0 else torch.empty  # the kernels write every element
        gxz = new(batch, L, 2 * D, **f32)
        gu = new(batch, L, D, **f32)
        gx_part = new(batch, nblk, L, R + 2 * N, **f32)  # d/d[dt_low | B | C], one partial sum per block
        gdtw_part, gA_part = new(batch, R, D, **f32), new(batch, N, D, **f32)
        gbias_part, gskip_part = new(batch, D, **f32), new(batch, D, **f32)
        if u.numel() > 0:
            _launch(k, "scan_tm_bwd", nthreads, batch * nblk, u.numpy(), dt.numpy(), _np(x_dbl), _np(dtwT),
                    _np(dt_bias), _np(AT), _np(AT2), _np(skip), xz.numpy(), gy.numpy(), hck.numpy(), ctx.reverse,
                    block, ctx.chunk, gu.numpy(), gxz.numpy(), gx_part.numpy(), gdtw_part.numpy(),
                    gbias_part.numpy(), gA_part.numpy(), gskip_part.numpy(), work=batch * L * D * N)
        g_dbl = gx_part.sum(1) if nblk > 1 else gx_part[:, 0]  # (batch, L, R + 2 N)
        g_x_proj = g_dbl.reshape(-1, R + 2 * N).t() @ u.view(-1, D)
        gu.view(-1, D).addmm_(g_dbl.reshape(-1, R + 2 * N), x_proj_weight)
        gw_part, gb_part = new(batch, K, D, **f32), new(batch, D, **f32)
        if u.numel() > 0:
            _launch(k, "conv_tm_bwd", nthreads, batch * -(-D // _CONV_BWD_BLOCK), xz.numpy(), _np(wT),
                    _np(conv_bias), gu.numpy(), ctx.reverse, _CONV_BWD_BLOCK, gxz.numpy(), gw_part.numpy(),
                    gb_part.numpy(), work=batch * L * D * K)
        return (gxz, gw_part.sum(0).t(), gb_part.sum(0), g_x_proj, gdtw_part.sum(0).t(), gbias_part.sum(0),
                gA_part.sum(0).t(), gskip_part.sum(0), None)


def mixer_train(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip,
                reverse: bool = False):
    """The Mamba mixer between ``in_proj`` and ``out_proj`` on float32 CPU tensors, time-major, differentiable
    w.r.t. every input: the function of :func:`mixer_inference` (same arguments and shapes; ``A`` (D, N) must
    be negative, as -exp(A_log) is), with a hand-written backward.

    Forward: the conv kernel, ``x_proj`` in torch, then the scan kernel (``dt_proj`` fused), which keeps dt and
    the state every ``_TRAIN_CHUNK`` steps. Backward: the scan's adjoint kernel (chunk by chunk, states
    recomputed from the saved ones; ``dt_proj``'s gradients fused), ``x_proj``'s as matmuls, the conv's
    backward kernel. No layout copies."""
    tensors = [xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip]
    if any(t is not None and (t.dtype != torch.float32 or t.device.type != "cpu") for t in tensors):
        raise ValueError("mixer_train: all tensors must be float32 CPU tensors")
    if conv_bias is None:  # a tensor, so that its (unused) gradient has an input to go to
        conv_bias = torch.zeros(conv_weight.shape[0], dtype=torch.float32)
    return _MixerFn.apply(xz, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_proj_bias, A, skip,
                          bool(reverse))
