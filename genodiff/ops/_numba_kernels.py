"""numba kernels of the fast CPU selective scan (imported lazily by :mod:`genodiff.ops._scan_numba`).

Layouts (C-contiguous, one dtype per call: float32, or float64 for float64 inputs):
u, delta, y, du, ddelta: (batch, dim, L); A: (dim, N); B, C: (batch, G, L, N) time-major so the
inner loop over the state runs over contiguous memory; last, dlast, dA_part: (batch, dim, N);
dB_part, dC_part: (batch, G, nblk, L, N) per-block partial sums.

The float32 kernels use :func:`fexp`, a branch-free Cephes-style expf (range reduction + degree-6
polynomial, max relative error ~6e-8 on [-87, 88]) that LLVM vectorises over the state dimension;
numba's ``math.exp`` is a scalar libm call and was ~5x slower here. float64 uses ``math.exp``.
"""

from __future__ import annotations

import math
import types as types_mod

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

_FASTMATH = {"contract", "reassoc", "nsz", "arcp"}  # reassoc: vectorise the sum over the state
_OPTS = dict(cache=True, nogil=True, fastmath=_FASTMATH)


@intrinsic
def _bits_to_f32(typingctx, x):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


def fexp(x):  # pragma: no cover - replaced by the overload inside compiled code
    """exp(x); float32: vectorisable polynomial expf, float64: math.exp."""
    return math.exp(x)


@overload(fexp, jit_options={"fastmath": False})  # keep Cody-Waite reduction un-reassociated
def _ov_fexp(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def impl(x):  # pragma: no cover - compiled
            xc = min(max(x, np.float32(-87.0)), np.float32(88.0))
            kf = math.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
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
            if x < np.float32(-87.0):  # true value < 1.7e-38: flush to 0
                res = np.float32(0.0)
            if x > np.float32(88.72):
                res = np.float32(np.inf)
            if x != x:
                res = x
            return res

        return impl
    if isinstance(x, types.Float):
        return lambda x: math.exp(x)  # pragma: no cover - compiled
    return None


@njit
def vexp(x, out):  # pragma: no cover - compiled; used by tests to check fexp
    for i in range(x.size):
        out[i] = fexp(x[i])


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
