"""numba kernels of the fast CPU selective scan and causal conv (imported by :mod:`genodiff.ops._scan_numba`).

Training kernels (``scan_fwd``/``scan_bwd``, channel-major, vectorised over the state). Layouts
(C-contiguous, one dtype per call: float32, or float64 for float64 inputs):
u, delta, y, du, ddelta: (batch, dim, L); A: (dim, N); B, C: (batch, G, L, N) time-major so the
inner loop over the state runs over contiguous memory; last, dlast, dA_part: (batch, dim, N);
dB_part, dC_part: (batch, G, nblk, L, N) per-block partial sums.

Training conv (``conv_cm_fwd``/``conv_cm_bwd``): the causal depthwise conv (+ SiLU) of the training path and its
gradients, channel-major (batch, D, L), float32 or float64; one task per (batch, channel) row.

Inference kernels (``conv_silu_tm``/``scan_infer_tm``, forward only, float32): time-major (batch, L, D)
tensors as the projections produce them, vectorised over channels; see their docstrings.

The float32 kernels use :func:`fexp`, a branch-free Cephes-style expf (range reduction + degree-6
polynomial, max relative error ~8e-8 on [-87, 88], ~3e-7 under the kernels' fast-math flags);
numba's ``math.exp`` is a scalar libm call and was ~5x slower here. It is inlined into the calling loop
(``inline="always"``) and floors by truncation and a select, so the loop that calls it vectorises; the
kernels' fast-math flags then apply to it too (its accuracy is tested under them). float64 uses ``math.exp``.
The inference scan's decay, whose argument is never positive, uses the cheaper :func:`fexp2_nonpos`
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
# the inference kernels vectorise over channels and reduce nothing across lanes: no reassociation needed
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
    """2**x for float32 x <= 0, the decay of the inference scan (dt >= 0 times A log2(e) < 0); ~14 vector ops.

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


def _scan_infer_tm(u, xdbl, dtwT, dt_bias, AT, skip, xz, y, reverse, block):  # pragma: no cover - compiled
    """Forward-only selective scan with the rest of the Mamba mixer after ``x_proj``, time-major and
    vectorised over channels.

    u (the conv output), y: (batch, L, D); xdbl: (batch, L, dt_rank + 2 N) = ``x_proj`` output
    ``[dt_low | B | C]``; dtwT: (dt_rank, D) = ``dt_proj.weight`` transposed; dt_bias, skip: (D,);
    AT: (N, D) = A transposed; xz: (batch, L, 2 D), z = its channels D..2D-1. Per time t::

        dt = softplus(dt_low[t] @ dtwT + dt_bias)
        h[n] = exp(dt A[:, n]) h[n] + dt u[t] B[t, n];   y[t] = (sum_n C[t, n] h[n] + skip u[t]) silu(z[t])

    (exp(dt A) computed as ``fexp2_nonpos(dt * (A log2 e))``).

    With ``reverse`` t runs from L-1 down to 0 (the scan of the time-reversed sequence, in forward
    coordinates). Tasks: (batch, block of channels); a block's state (N, block) stays in L1."""
    batch, L, D = u.shape
    N = AT.shape[0]
    dt_rank = dtwT.shape[0]
    off_c = dt_rank + N
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
        for n in range(N):  # A log2(e): the decay exp(dt A) is computed as 2**(dt A log2(e))
            an = AT[n, d0:d0 + w]
            for j in range(w):
                a[n, j] = an[j] * _LOG2E
        sk = skip[d0:d0 + w]
        bias = dt_bias[d0:d0 + w]
        for s in range(L):
            t = L - 1 - s if reverse else s
            ut = u[b, t, d0:d0 + w]
            for j in range(w):  # short loops over a few arrays each: they vectorise
                dtt[j] = bias[j]
            for r in range(dt_rank):
                cr = xdbl[b, t, r]
                wr = dtwT[r, d0:d0 + w]
                for j in range(w):
                    dtt[j] += cr * wr[j]
            for j in range(w):
                dj = fsoftplus(dtt[j])
                uj = ut[j]
                dtt[j] = dj
                dtu[j] = dj * uj
                acc[j] = sk[j] * uj
            for n in range(N):
                bn = xdbl[b, t, dt_rank + n]
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
scan_infer_tm = njit(parallel=True, **_OPTS_TM)(_renamed(_scan_infer_tm, "_parallel"))
scan_infer_tm_serial = njit(**_OPTS_TM)(_renamed(_scan_infer_tm, "_serial"))
conv_cm_fwd = njit(parallel=True, **_OPTS)(_renamed(_conv_cm_fwd, "_parallel"))
conv_cm_fwd_serial = njit(**_OPTS)(_renamed(_conv_cm_fwd, "_serial"))
conv_cm_bwd = njit(parallel=True, **_OPTS)(_renamed(_conv_cm_bwd, "_parallel"))
conv_cm_bwd_serial = njit(**_OPTS)(_renamed(_conv_cm_bwd, "_serial"))
