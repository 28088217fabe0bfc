"""numba kernels of the fast CPU selective scan and causal conv (imported by :mod:`genodiff.ops._scan_numba`).

General-path scan kernels (``scan_fwd``/``scan_bwd``, channel-major, vectorised over the state; any float32 or
float64 ``selective_scan`` call on a CPU, and training outside the fused mixer). Layouts
(C-contiguous, one dtype per call: float32, or float64 for float64 inputs):
u, delta, y, du, ddelta: (batch, dim, L); A: (dim, N); B, C: (batch, G, L, N) time-major so the
inner loop over the state runs over contiguous memory; last, dlast, dA_part: (batch, dim, N);
dB_part, dC_part: (batch, G, nblk, L, N) per-block partial sums.

General-path conv (``conv_cm_fwd``/``conv_cm_bwd``): the causal depthwise conv (+ SiLU) of ``causal_conv1d`` on a
CPU and its gradients, channel-major (batch, D, L), float32 or float64; one task per (batch, channel) row.

Fused mixer kernels (float32, time-major (batch, L, D) tensors as the projections produce them, vectorised
over channels): ``conv_silu_tm`` (conv + SiLU) and ``scan_tm_fwd`` (``dt_proj`` + softplus + scan + skip +
gate) are the forward of inference and training; ``conv_tm_bwd`` and ``scan_tm_bwd`` their backward. See their
docstrings.

The float32 kernels use :func:`fexp`, a branch-free Cephes-style expf (range reduction + degree-6
polynomial, max relative error ~8e-8 on [-87, 88], ~3e-7 under the kernels' fast-math flags);
numba's ``math.exp`` is a scalar libm call and was ~5x slower here. It is inlined into the calling loop
(``inline="always"``) and floors by truncation and a select, so the loop that calls it vectorises; the
kernels' fast-math flags then apply to it too (its accuracy is tested under them). float64 uses ``math.exp``.
The fused scans' decay, whose argument is never positive, uses the cheaper :func:`fexp2_nonpos`
(2**x with A log2(e) precomputed; no overflow, NaN or Cody-Waite steps).
"""

from __future__ import annotations

import math
import types as types_mod
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload

# numba's pedantic SSA check flags the select-style branches of the inlined fexp ("variable ... is not in
# scope"); the compiled code is correct (tested), the warning is noise for users on the first compile
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)

_FASTMATH = {"contract", "reassoc", "nsz", "arcp"}  # reassoc: vectorise the sum over the state
# the time-major kernels vectorise over channels and reduce nothing across lanes: no reassociation needed
# (except ``scan_tm_bwd``, whose B, C and dt_low gradients sum over the channels: it uses _FASTMATH)
_FASTMATH_TM = {"contract", "nsz", "arcp"}
# error_model "numpy": a float division by zero gives inf/nan instead of raising ZeroDivisionError. The
# "python" default puts a zero test and a branch before every division, which stops LLVM from vectorising
# any loop that divides (fsilu, fsoftplus): the serial kernels ran those loops scalar, 3-6x slower than the
# parallel ones (parfor bodies always use the numpy model). No kernel divides by a value that can be zero.
_ERRORS = "numpy"
_OPTS = dict(cache=True, nogil=True, fastmath=_FASTMATH, error_model=_ERRORS)


@intrinsic
def _bits_to_f32(typingctx, x):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _f32_to_bits(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


def fexp(x):  # pragma: no cover - replaced by the overload inside compiled code
    """exp(x); float32: vectorisable polynomial expf, float64: math.exp."""
    return math.exp(x)


@overload(fexp, inline="always")
def _ov_fexp(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def impl(x):  # pragma: no cover - compiled
            xc = min(max(x, np.float32(-87.0)), np.float32(88.0))
            t = xc * np.float32(1.44269504088896341) + np.float32(0.5)
            k = np.int32(t)  # truncation; floor(t) below, as a select (math.floor would be a libm call)
            kf = np.float32(k)
            kf = kf - np.float32(kf > t)
            r = xc - kf * np.float32(0.693359375)
            r = r - kf * np.float32(-2.12194440e-4)
            p = np.float32(1.9875691500e-4)
            p = p * r + np.float32(1.3981999507e-3)
            p = p * r + np.float32(8.3334519073e-3)
            p = p * r + np.float32(4.1665795894e-2)
            p = p * r + np.float32(1.6666665459e-1)
            p = p * r + np.float32(5.0000001201e-1)
            p = p * r * r + r + np.float32(1.0)
            res = p * _bits_to_f32((np.int32(kf) + np.int32(127)) << np.int32(23))
            res = np.float32(0.0) if x < np.float32(-87.0) else res  # true value < 1.7e-38: flush to 0
            res = np.float32(np.inf) if x > np.float32(88.72) else res
            return x if x != x else res

        return impl
    if isinstance(x, types.Float):
        return lambda x: math.exp(x)  # pragma: no cover - compiled
    return None


_LOG2E = np.float32(1.4426950408889634)


@njit(inline="always", error_model=_ERRORS)
def fexp2_nonpos(x):  # pragma: no cover - compiled
    """2**x for float32 x <= 0, the decay of the fused scans (dt >= 0 times A log2(e) < 0); ~14 vector ops.

    k = rint(x) (one vroundps; exact, and safe under reassociating fast-math, unlike the 1.5 * 2**23 trick),
    2**(x - k) for |x - k| <= 1/2 as a degree-5 polynomial (fitted for relative error: 9e-8 before float32
    rounding, ~2e-7 after; evaluated in Estrin's form, dependency depth 3 instead of Horner's 5), then k
    added to its exponent bits. x < -125 returns 0 (true value < 2.4e-38); x > 0 is not supported (the
    caller guarantees x <= 0); a NaN x gives an unspecified value (a NaN dt still reaches the state via dt u B).
    """
    xc = max(x, np.float32(-125.0))
    kf = np.rint(xc)
    r = xc - kf
    r2 = r * r
    p01 = np.float32(6.931470036506653e-1) * r + np.float32(1.0)
    p23 = np.float32(5.550733581185341e-2) * r + np.float32(2.4022242426872253e-1)
    p45 = np.float32(1.326472731307149e-3) * r + np.float32(9.671512991189957e-3)
    p = (p45 * r2 + p23) * r2 + p01
    res = _bits_to_f32(_f32_to_bits(p) + (np.int32(kf) << np.int32(23)))
    return np.float32(0.0) if x < np.float32(-125.0) else res


@njit(fastmath=_FASTMATH)
def vexp2_nonpos(x, out):  # pragma: no cover - compiled; used by tests to check fexp2_nonpos under fast-math
    for i in range(x.size):
        out[i] = fexp2_nonpos(x[i])


@njit
def vexp(x, out):  # pragma: no cover - compiled; used by tests to check fexp
    for i in range(x.size):
        out[i] = fexp(x[i])


@njit(fastmath=_FASTMATH)
def vexp_fastmath(x, out):  # pragma: no cover - compiled; fexp inlined under the kernels' fast-math flags
    for i in range(x.size):
        out[i] = fexp(x[i])


@njit(inline="always", error_model=_ERRORS)
def fsoftplus(x):  # pragma: no cover - compiled
    """softplus(x) = log(1 + exp(x)) (torch's threshold: x > 20 -> x) for float32, vectorisable:
    max(x, 0) + log1p(exp(-|x|)) with log1p(y) = 2 atanh(y / (2 + y)) as its odd series up to s^15
    (s <= 1/3; truncation < 2e-8 relative). Max relative error ~3e-7."""
    y = fexp(-abs(x))
    s = y / (np.float32(2.0) + y)
    s2 = s * s
    p = np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    res = max(x, np.float32(0.0)) + np.float32(2.0) * s * p
    return x if x > np.float32(20.0) else res


@njit(inline="always", error_model=_ERRORS)
def fsilu(x):  # pragma: no cover - compiled
    """silu(x) = x * sigmoid(x) for float32 (vectorisable)."""
    return x / (np.float32(1.0) + fexp(-x))


@njit(fastmath=_FASTMATH_TM, error_model=_ERRORS)
def vsoftplus_silu(x, sp_out, silu_out):  # pragma: no cover - compiled; used by tests
    for i in range(x.size):
        sp_out[i] = fsoftplus(x[i])
        silu_out[i] = fsilu(x[i])


def _scan_fwd(u, delta, A, Bm, Cm, y, last):  # pragma: no cover - compiled
    batch, dim, L = u.shape
    G = Bm.shape[1]
    N = A.shape[1]
    dpg = dim // G
    for i in prange(batch * dim):
        b = i // dim
        d = i - b * dim
        g = d // dpg
        h = np.zeros(N, dtype=u.dtype)
        a = np.empty(N, dtype=u.dtype)
        zero = np.zeros(1, dtype=u.dtype)[0]
        for n in range(N):
            a[n] = A[d, n]
        for t in range(L):
            dt = delta[b, d, t]
            dtu = dt * u[b, d, t]
            acc = zero
            for n in range(N):
                hn = fexp(dt * a[n]) * h[n] + dtu * Bm[b, g, t, n]
                h[n] = hn
                acc += hn * Cm[b, g, t, n]
            y[b, d, t] = acc
        for n in range(N):
            last[b, d, n] = h[n]


def _scan_bwd(u, delta, A, Bm, Cm, dy, dlast, du, ddelta, dA_part, dB_part, dC_part):  # pragma: no cover
    batch, dim, L = u.shape
    G = Bm.shape[1]
    N = A.shape[1]
    dpg = dim // G
    nblk = dB_part.shape[2]
    for task in prange(batch * G * nblk):
        b = task // (G * nblk)
        r = task - b * (G * nblk)
        g = r // nblk
        c = r - g * nblk
        d0 = g * dpg + (c * dpg) // nblk
        d1 = g * dpg + ((c + 1) * dpg) // nblk
        hs = np.empty((L, N), dtype=u.dtype)
        decs = np.empty((L, N), dtype=u.dtype)
        h = np.zeros(N, dtype=u.dtype)
        adj = np.zeros(N, dtype=u.dtype)
        dacc = np.zeros(N, dtype=np.float64)  # dA sums L terms per channel: keep them in float64
        a = np.empty(N, dtype=u.dtype)
        zero = np.zeros(1, dtype=u.dtype)[0]
        for d in range(d0, d1):
            for n in range(N):
                a[n] = A[d, n]
                h[n] = zero
                adj[n] = dlast[b, d, n]
                dacc[n] = 0.0
            # recompute states h[t] and decays exp(delta[t] A) of this channel
            for t in range(L):
                dt = delta[b, d, t]
                dtu = dt * u[b, d, t]
                for n in range(N):
                    e = fexp(dt * a[n])
                    hn = e * h[n] + dtu * Bm[b, g, t, n]
                    decs[t, n] = e
                    hs[t, n] = hn
                    h[n] = hn
            # reverse-time adjoint: adj = dL/dh[t] from the future, gn adds this step's output
            for t in range(L - 1, -1, -1):
                dt = delta[b, d, t]
                ut = u[b, d, t]
                dyt = dy[b, d, t]
                dtu = dt * ut
                sdu = zero
                sdd = zero
                if t > 0:
                    for n in range(N):
                        gn = adj[n] + Cm[b, g, t, n] * dyt
                        dC_part[b, g, c, t, n] += dyt * hs[t, n]
                        dB_part[b, g, c, t, n] += gn * dtu
                        sdu += gn * Bm[b, g, t, n]
                        x = gn * decs[t, n] * hs[t - 1, n]
                        sdd += x * a[n]
                        dacc[n] += x * dt
                        adj[n] = gn * decs[t, n]
                else:
                    for n in range(N):
                        gn = adj[n] + Cm[b, g, t, n] * dyt
                        dC_part[b, g, c, t, n] += dyt * hs[t, n]
                        dB_part[b, g, c, t, n] += gn * dtu
                        sdu += gn * Bm[b, g, t, n]
                du[b, d, t] = sdu * dt
                ddelta[b, d, t] = sdd + sdu * ut
            for n in range(N):
                dA_part[b, d, n] = dacc[n]


def _conv_silu_tm(x, wT, bias, out, reverse):  # pragma: no cover - compiled
    """Depthwise conv + SiLU in time-major layout: x (batch, L, >= D) (its first D channels are read),
    wT (K, D), bias (D,), out (batch, L, D). Causal (t sees x[t-K+1..t]) or, with ``reverse``, the same
    filter run against time (t sees x[t..t+K-1], tap k at t+K-1-k): the causal conv of the time-reversed
    sequence, read back in forward time."""
    batch, L, D = out.shape
    K = wT.shape[0]
    for task in prange(batch * L):
        b = task // L
        t = task - b * L
        o = out[b, t]
        for d in range(D):
            o[d] = bias[d]
        for k in range(K):
            s = t + (K - 1) - k if reverse else t - (K - 1) + k
            if s >= 0 and s < L:
                xs = x[b, s]
                wk = wT[k]
                for d in range(D):
                    o[d] += wk[d] * xs[d]
        for d in range(D):
            o[d] = fsilu(o[d])


@njit(inline="always", error_model=_ERRORS)
def _dt_pre(xrow, dtwT, dt_bias, d0, w, out):  # pragma: no cover - compiled
    """out[j] = dt_bias[d0 + j] + sum_r xrow[r] dtwT[r, d0 + j] for j < w: ``dt_proj`` before the softplus
    (short loops over a few arrays each: they vectorise)."""
    bias = dt_bias[d0:d0 + w]
    for j in range(w):
        out[j] = bias[j]
    for r in range(dtwT.shape[0]):
        cr = xrow[r]
        wr = dtwT[r, d0:d0 + w]
        for j in range(w):
            out[j] += cr * wr[j]


def _conv_cm_fwd(x, w, bias, out, silu):  # pragma: no cover - compiled
    """Causal depthwise conv (+ SiLU when ``silu``), channel-major: x, out (batch, D, L); w (D, K); bias (D,).
    ``out[b, d, t] = bias[d] + sum_k w[d, k] x[b, d, t - (K - 1) + k]`` (x is zero before t = 0)."""
    batch, D, L = x.shape
    for task in prange(batch * D):
        b = task // D
        d = task - b * D
        _conv_row(x[b, d], w[d], bias[d], out[b, d])
        if silu:
            o = out[b, d]
            for t in range(L):
                o[t] = fsilu(o[t])


@njit(inline="always", error_model=_ERRORS)
def _conv_row(xr, wd, bd, o):  # pragma: no cover - compiled
    """One channel of the causal conv without activation: o[t] = bd + sum_k wd[k] xr[t - (K - 1) + k]."""
    L = xr.shape[0]
    K = wd.shape[0]
    for t in range(L):
        o[t] = bd
    for k in range(K):
        s = K - 1 - k
        wk = wd[k]
        for t in range(s, L):
            o[t] += wk * xr[t - s]


def _conv_cm_bwd(x, w, bias, gy, silu, gx, gw_part, gb_part):  # pragma: no cover - compiled
    """Gradients of :func:`_conv_cm_fwd` for output gradient gy (batch, D, L): gx (batch, D, L) and per-row
    partial sums gw_part (batch, D, K), gb_part (batch, D) (summed over the batch in torch). With ``silu``
    the pre-activation is recomputed from x (nothing but x is kept from the forward)."""
    batch, D, L = x.shape
    K = w.shape[1]
    for task in prange(batch * D):
        b = task // D
        d = task - b * D
        xr = x[b, d]
        gyr = gy[b, d]
        g = np.empty(L, dtype=x.dtype)  # d loss / d pre-activation
        if silu:
            _conv_row(xr, w[d], bias[d], g)
            for t in range(L):
                a = g[t]
                sg = np.float32(1.0) / (np.float32(1.0) + fexp(-a))
                g[t] = gyr[t] * (sg * (np.float32(1.0) + a * (np.float32(1.0) - sg)))
        else:
            for t in range(L):
                g[t] = gyr[t]
        acc = g[0] * np.float32(0.0)
        for t in range(L):
            acc += g[t]
        gb_part[b, d] = acc
        for k in range(K):
            s = K - 1 - k
            acc = g[0] * np.float32(0.0)
            for t in range(s, L):
                acc += g[t] * xr[t - s]
            gw_part[b, d, k] = acc
        gxr = gx[b, d]
        for t in range(L):
            gxr[t] = g[t] * np.float32(0.0)
        for k in range(K):
            s = K - 1 - k
            wk = w[d, k]
            for t in range(L - s):
                gxr[t] += wk * g[t + s]


def _conv_tm_bwd(xz, wT, bias, gu, reverse, block, gxz, gw_part, gb_part):  # pragma: no cover - compiled
    """Gradients of :func:`_conv_silu_tm` (with SiLU) for the output gradient gu (batch, L, D): d/dx written into
    the first D channels of gxz (batch, L, >= D), per-row sums gw_part (batch, K, D) and gb_part (batch, D)
    (summed over the batch in torch). The pre-activation is recomputed from x. Tasks: (batch, block of
    channels); a task keeps its (L, block) pre-activation gradient in a buffer."""
    batch, L, D = gu.shape
    K = wT.shape[0]
    nblk = (D + block - 1) // block
    for task in prange(batch * nblk):
        b = task // nblk
        d0 = (task - b * nblk) * block
        w = min(block, D - d0)
        g = np.empty((L, w), dtype=gu.dtype)
        gb = np.zeros(w, dtype=np.float64)  # sums of L terms per channel: kept in float64
        gw = np.zeros((K, w), dtype=np.float64)
        pre = np.empty(w, dtype=gu.dtype)
        bs = bias[d0:d0 + w]
        for t in range(L):
            for j in range(w):
                pre[j] = bs[j]
            for k in range(K):
                s = t + (K - 1) - k if reverse else t - (K - 1) + k
                if s >= 0 and s < L:
                    xs = xz[b, s, d0:d0 + w]
                    wk = wT[k, d0:d0 + w]
                    for j in range(w):
                        pre[j] += wk[j] * xs[j]
            gt = gu[b, t, d0:d0 + w]
            gtt = g[t]
            for j in range(w):
                a = pre[j]
                sg = np.float32(1.0) / (np.float32(1.0) + fexp(-a))
                v = gt[j] * (sg * (np.float32(1.0) + a * (np.float32(1.0) - sg)))
                gtt[j] = v
                gb[j] += v
            for k in range(K):
                s = t + (K - 1) - k if reverse else t - (K - 1) + k
                if s >= 0 and s < L:
                    xs = xz[b, s, d0:d0 + w]
                    gwk = gw[k]
                    for j in range(w):
                        gwk[j] += gtt[j] * xs[j]
        for s in range(L):
            o = gxz[b, s, d0:d0 + w]
            for j in range(w):
                o[j] = np.float32(0.0)
            for k in range(K):
                t = s - (K - 1) + k if reverse else s + (K - 1) - k
                if t >= 0 and t < L:
                    wk = wT[k, d0:d0 + w]
                    gtt = g[t]
                    for j in range(w):
                        o[j] += wk[j] * gtt[j]
        for j in range(w):
            gb_part[b, d0 + j] = gb[j]
        for k in range(K):
            for j in range(w):
                gw_part[b, k, d0 + j] = gw[k, j]


def _scan_tm_fwd(u, xdbl, dtwT, dt_bias, AT2, skip, xz, reverse, block, chunk, y, dt_out, hck):  # pragma: no cover
    """The Mamba mixer after ``x_proj`` (``dt_proj``, softplus, selective scan, D skip, SiLU(z) gate), time-major
    and vectorised over channels; the forward of inference and of training.

    u (the conv output), y, dt_out: (batch, L, D); xdbl: (batch, L, R + 2 N) = ``x_proj`` output
    ``[dt_low | B | C]``; dtwT: (R, D) = ``dt_proj.weight`` transposed; dt_bias, skip: (D,); AT2: (N, D) =
    A^T log2(e) (A < 0); xz: (batch, L, 2 D), z = its channels D..2D-1. Per step::

        dt = softplus(dt_low[t] @ dtwT + dt_bias)
        h[n] = exp(dt A[:, n]) h[n] + dt u[t] B[t, n];   y[t] = (sum_n C[t, n] h[n] + skip u[t]) silu(z[t])

    (exp(dt A) computed as ``fexp2_nonpos(dt * AT2[n])``). Steps s = 0..L-1 visit t = s, or t = L-1-s with
    ``reverse`` (the scan of the time-reversed sequence, in forward coordinates). Tasks: (batch, block of
    channels); a block's state (N, block) stays in L1.

    Training keeps what the backward needs: dt_out = dt, and hck (batch, ceil(L / chunk), N, D), the state
    before steps 0, chunk, 2 chunk, ... Inference passes empty dt_out and hck: nothing is kept."""
    batch, L, D = u.shape
    N = AT2.shape[0]
    R = dtwT.shape[0]
    off_b = R
    off_c = off_b + N
    nblk = (D + block - 1) // block
    for task in prange(batch * nblk):
        b = task // nblk
        d0 = (task - b * nblk) * block
        w = min(block, D - d0)
        h = np.zeros((N, w), dtype=u.dtype)
        a = np.empty((N, w), dtype=u.dtype)
        dtt = np.empty(w, dtype=u.dtype)
        dtu = np.empty(w, dtype=u.dtype)
        acc = np.empty(w, dtype=u.dtype)
        for n in range(N):
            for j in range(w):
                a[n, j] = AT2[n, d0 + j]
        sk = skip[d0:d0 + w]
        keep = dt_out.size > 0
        for s in range(L):
            t = L - 1 - s if reverse else s
            if keep and s % chunk == 0:
                c = s // chunk
                for n in range(N):
                    hc = hck[b, c, n, d0:d0 + w]
                    hn = h[n]
                    for j in range(w):
                        hc[j] = hn[j]
            ut = u[b, t, d0:d0 + w]
            _dt_pre(xdbl[b, t], dtwT, dt_bias, d0, w, dtt)
            for j in range(w):
                dj = fsoftplus(dtt[j])
                uj = ut[j]
                dtt[j] = dj
                dtu[j] = dj * uj
                acc[j] = sk[j] * uj
            if keep:
                dto = dt_out[b, t, d0:d0 + w]
                for j in range(w):
                    dto[j] = dtt[j]
            for n in range(N):
                bn = xdbl[b, t, off_b + n]
                cn = xdbl[b, t, off_c + n]
                an = a[n]
                hn = h[n]
                for j in range(w):
                    hv = fexp2_nonpos(dtt[j] * an[j]) * hn[j] + dtu[j] * bn
                    hn[j] = hv
                    acc[j] += hv * cn
            zt = xz[b, t, D + d0:D + d0 + w]
            yt = y[b, t, d0:d0 + w]
            for j in range(w):
                yt[j] = acc[j] * fsilu(zt[j])


def _scan_tm_bwd(u, dt, xdbl, dtwT, dt_bias, AT, AT2, skip, xz, gy, hck, reverse, block, chunk,
                 gu, gxz, gx_part, gdtw_part, gbias_part, gA_part, gskip_part):  # pragma: no cover - compiled
    """Gradients of :func:`_scan_tm_fwd` for the output gradient gy (batch, L, D).

    AT: (N, D) = A^T (AT2 = AT log2(e) as in the forward); dt, hck: what the forward kept. Writes
    gu = d/du (the scan's share; the caller adds the x_proj path's) and d/dz into gxz[..., D:2D] (batch, L, ..);
    per batch row (its channels' tasks are disjoint; summed over the batch in torch) gdtw_part (batch, R, D),
    gbias_part, gskip_part (batch, D), gA_part (batch, N, D); and gx_part (batch, nblk, L, R + 2 N) =
    d/d[dt_low | B | C], one partial sum per channel block.

    Per task (batch row, channel block), chunks of ``chunk`` steps in reverse processing order: the chunk's
    states and decays are recomputed from its checkpoint into (chunk + 1, N, block) buffers, then the adjoint
    g[n] = C[t, n] gys[t] + 2**(dt[t+1] AT2[n]) g[n] runs backwards through the chunk (gys = gy silu(z))."""
    batch, L, D = u.shape
    N = AT2.shape[0]
    R = dtwT.shape[0]
    off_b = R
    off_c = off_b + N
    nblk = (D + block - 1) // block
    nck = (L + chunk - 1) // chunk
    for task in prange(batch * nblk):
        b = task // nblk
        blk = task - b * nblk
        d0 = blk * block
        w = min(block, D - d0)
        a = np.empty((N, w), dtype=u.dtype)
        a2 = np.empty((N, w), dtype=u.dtype)
        for n in range(N):
            for j in range(w):
                a[n, j] = AT[n, d0 + j]
                a2[n, j] = AT2[n, d0 + j]
        hb = np.empty((chunk + 1, N, w), dtype=u.dtype)
        dec = np.empty((chunk, N, w), dtype=u.dtype)
        ysb = np.empty((chunk, w), dtype=u.dtype)
        adj = np.zeros((N, w), dtype=u.dtype)
        gac = np.empty((N, w), dtype=u.dtype)
        # the parameter gradients sum L terms per channel: float32 sums over a chunk, added up in float64
        ga64 = np.zeros((N, w), dtype=np.float64)
        gdw = np.empty((R, w), dtype=u.dtype)
        gdw64 = np.zeros((R, w), dtype=np.float64)
        gbias64 = np.zeros(w, dtype=np.float64)
        gsk = np.zeros(w, dtype=np.float64)
        gp = np.empty(w, dtype=u.dtype)
        dtu = np.empty(w, dtype=u.dtype)
        gys = np.empty(w, dtype=u.dtype)
        sdu = np.empty(w, dtype=u.dtype)
        sdd = np.empty(w, dtype=u.dtype)
        acc = np.empty(w, dtype=u.dtype)
        sk = skip[d0:d0 + w]
        for c in range(nck - 1, -1, -1):
            s0 = c * chunk
            ns = min(chunk, L - s0)
            for n in range(N):
                hc = hck[b, c, n, d0:d0 + w]
                for j in range(w):
                    hb[0, n, j] = hc[j]
            for i in range(ns):
                t = L - 1 - (s0 + i) if reverse else s0 + i
                dti = dt[b, t, d0:d0 + w]
                ut = u[b, t, d0:d0 + w]
                for j in range(w):
                    dtu[j] = dti[j] * ut[j]
                    acc[j] = sk[j] * ut[j]
                for n in range(N):
                    bn = xdbl[b, t, off_b + n]
                    cn = xdbl[b, t, off_c + n]
                    hp = hb[i, n]
                    hq = hb[i + 1, n]
                    de = dec[i, n]
                    an = a2[n]
                    for j in range(w):
                        e = fexp2_nonpos(dti[j] * an[j])
                        hv = e * hp[j] + dtu[j] * bn
                        de[j] = e
                        hq[j] = hv
                        acc[j] += hv * cn
                for j in range(w):
                    ysb[i, j] = acc[j]
            for n in range(N):
                for j in range(w):
                    gac[n, j] = np.float32(0.0)
            for r in range(R):
                for j in range(w):
                    gdw[r, j] = np.float32(0.0)
            for i in range(ns - 1, -1, -1):
                t = L - 1 - (s0 + i) if reverse else s0 + i
                dti = dt[b, t, d0:d0 + w]
                ut = u[b, t, d0:d0 + w]
                zt = xz[b, t, D + d0:D + d0 + w]
                gyt = gy[b, t, d0:d0 + w]
                gzt = gxz[b, t, D + d0:D + d0 + w]
                for j in range(w):
                    z = zt[j]
                    sg = np.float32(1.0) / (np.float32(1.0) + fexp(-z))
                    gz = gyt[j] * ysb[i, j] * (sg * (np.float32(1.0) + z * (np.float32(1.0) - sg)))
                    gzt[j] = gz
                    g = gyt[j] * z * sg
                    gys[j] = g
                    gsk[j] += g * ut[j]
                    dtu[j] = dti[j] * ut[j]
                    sdu[j] = np.float32(0.0)
                    sdd[j] = np.float32(0.0)
                for n in range(N):
                    bn = xdbl[b, t, off_b + n]
                    cn = xdbl[b, t, off_c + n]
                    hp = hb[i, n]
                    hq = hb[i + 1, n]
                    de = dec[i, n]
                    an = a[n]
                    ad = adj[n]
                    gan = gac[n]
                    sum_c = np.float32(0.0)
                    sum_b = np.float32(0.0)
                    for j in range(w):
                        gh = ad[j] + cn * gys[j]
                        sum_c += gys[j] * hq[j]
                        sum_b += gh * dtu[j]
                        sdu[j] += gh * bn
                        x = gh * de[j] * hp[j]
                        sdd[j] += x * an[j]
                        gan[j] += x * dti[j]
                        ad[j] = gh * de[j]
                    gx_part[b, blk, t, off_c + n] = sum_c
                    gx_part[b, blk, t, off_b + n] = sum_b
                xr = xdbl[b, t]
                _dt_pre(xr, dtwT, dt_bias, d0, w, acc)
                gut = gu[b, t, d0:d0 + w]
                for j in range(w):
                    gut[j] = gys[j] * sk[j] + sdu[j] * dti[j]
                    sg = np.float32(1.0) / (np.float32(1.0) + fexp(-acc[j]))
                    g = (sdd[j] + sdu[j] * ut[j]) * sg  # d/d(dt_proj output): softplus' = sigmoid
                    gp[j] = g
                    gbias64[j] += g
                for r in range(R):
                    cr = xr[r]
                    wr = dtwT[r, d0:d0 + w]
                    gr = gdw[r]
                    sum_r = np.float32(0.0)
                    for j in range(w):
                        gr[j] += gp[j] * cr
                        sum_r += gp[j] * wr[j]
                    gx_part[b, blk, t, r] = sum_r
            for n in range(N):
                for j in range(w):
                    ga64[n, j] += gac[n, j]
            for r in range(R):
                for j in range(w):
                    gdw64[r, j] += gdw[r, j]
        for n in range(N):
            for j in range(w):
                gA_part[b, n, d0 + j] = ga64[n, j]
        for r in range(R):
            for j in range(w):
                gdtw_part[b, r, d0 + j] = gdw64[r, j]
        for j in range(w):
            gskip_part[b, d0 + j] = gsk[j]
            gbias_part[b, d0 + j] = gbias64[j]


def _renamed(fn, suffix):
    """A copy of ``fn`` under another qualname, so numba's on-disk cache keeps the variants apart."""
    new = types_mod.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                                 fn.__closure__)
    new.__qualname__ = fn.__qualname__ + suffix
    new.__module__ = fn.__module__
    return new


# parallel (prange over channels) and serial variants; the serial ones serve single-thread calls and
# processes forked after the parent used numba's OpenMP pool (GNU OpenMP is not fork-safe: numba
# would terminate the child)
scan_fwd = njit(parallel=True, **_OPTS)(_renamed(_scan_fwd, "_parallel"))
scan_bwd = njit(parallel=True, **_OPTS)(_renamed(_scan_bwd, "_parallel"))
scan_fwd_serial = njit(**_OPTS)(_renamed(_scan_fwd, "_serial"))
scan_bwd_serial = njit(**_OPTS)(_renamed(_scan_bwd, "_serial"))
_OPTS_TM = dict(cache=True, nogil=True, fastmath=_FASTMATH_TM, error_model=_ERRORS)
conv_silu_tm = njit(parallel=True, **_OPTS_TM)(_renamed(_conv_silu_tm, "_parallel"))
conv_silu_tm_serial = njit(**_OPTS_TM)(_renamed(_conv_silu_tm, "_serial"))
conv_cm_fwd = njit(parallel=True, **_OPTS)(_renamed(_conv_cm_fwd, "_parallel"))
conv_cm_fwd_serial = njit(**_OPTS)(_renamed(_conv_cm_fwd, "_serial"))
conv_cm_bwd = njit(parallel=True, **_OPTS)(_renamed(_conv_cm_bwd, "_parallel"))
conv_cm_bwd_serial = njit(**_OPTS)(_renamed(_conv_cm_bwd, "_serial"))
conv_tm_bwd = njit(parallel=True, **_OPTS_TM)(_renamed(_conv_tm_bwd, "_parallel"))
conv_tm_bwd_serial = njit(**_OPTS_TM)(_renamed(_conv_tm_bwd, "_serial"))
scan_tm_fwd = njit(parallel=True, **_OPTS_TM)(_renamed(_scan_tm_fwd, "_parallel"))
scan_tm_fwd_serial = njit(**_OPTS_TM)(_renamed(_scan_tm_fwd, "_serial"))
scan_tm_bwd = njit(parallel=True, **_OPTS)(_renamed(_scan_tm_bwd, "_parallel"))
scan_tm_bwd_serial = njit(**_OPTS)(_renamed(_scan_tm_bwd, "_serial"))
