"""Triton kernels of the fused selective scan (imported lazily by :mod:`genodiff.ops._scan_triton`; this module
imports triton at its top, so nothing imports it before a Triton scan actually runs).

One program per (channel d, batch b), grid ``(dim, batch)``, like mamba-ssm's CUDA kernel. The program walks
the sequence in chunks of ``BLOCK_T`` time steps; inside a chunk the (BLOCK_N, BLOCK_T) tile of the
recurrence ``h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t]`` is solved with ``tl.associative_scan`` over
time (combine: composition of the affine maps ``h -> a h + b``), and the state entering the next chunk is
carried in registers. Registers and shared memory are bounded by the chunk, whatever the length.

Layouts (contiguous): u, delta, z, out, du, ddelta, dz, dout: (batch, dim, L); A, dA partials: (dim, N) /
(batch, dim, N); B, C, dB, dC: (batch, groups, N, L); D, delta_bias: (dim,); chunk states: (batch, dim,
n_chunks, N); last, dlast: (batch, dim, N). ``ACC`` is the compute dtype (float32, float64 for float64).

Forward (:func:`scan_fwd_kernel`): softplus(delta + delta_bias), the scan, ``y = sum_n C h``, the D skip and
the SiLU(z) gate, all fused; it stores ``out``, optionally the final state, and (for a backward) the state
entering every chunk -- nothing of size (B, D, L, N).

Backward (:func:`scan_bwd_kernel`): chunks in reverse order. Per chunk it reloads the saved entering state
and recomputes the chunk's states (the same scan), then solves the adjoint ``g[t] = C[t] dy[t] +
exp(delta[t+1] A) g[t+1]`` (seeded with d last_state) with a reverse scan, carrying ``g`` at the chunk start
into the previous chunk. Per-channel sums (dA, dD, d delta_bias) stay in registers and are written once per
(batch, channel) for torch to sum over the batch; dB and dC, which sum over the channels of a group, are
accumulated with ``tl.atomic_add`` into float32 (float64) buffers.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def add_combine(a, b):
    """``tl.sum`` as a reduction with this module's own combine function (the interpreter shortcut in
    :mod:`genodiff.ops._scan_triton` recognises it; on the GPU it is the same reduction as ``tl.sum``)."""
    return a + b


@triton.jit
def lin_combine(a1, b1, a2, b2):
    """Compose ``x -> a1 x + b1`` (earlier) with ``x -> a2 x + b2`` (later)."""
    return a1 * a2, b1 * a2 + b2


@triton.jit
def scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, last_ptr, hin_ptr,
    dim, L, N, n_chunks, dpg_b, dpg_c, groups_b, groups_c,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, ACC: tl.constexpr,
):
    d = tl.program_id(0)
    b = tl.program_id(1)
    n = tl.arange(0, BLOCK_N)
    tt = tl.arange(0, BLOCK_T)
    mn = n < N
    chan = (b * dim + d).to(tl.int64)
    row = chan * L
    b_base = B_ptr + ((b * groups_b + d // dpg_b).to(tl.int64) * N) * L
    c_base = C_ptr + ((b * groups_c + d // dpg_c).to(tl.int64) * N) * L
    A = tl.load(A_ptr + d * N + n, mask=mn, other=0.0).to(ACC)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(ACC)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(ACC)
    h = tl.full([BLOCK_N], 0.0, ACC)
    for c in range(0, n_chunks):
        t = c * BLOCK_T + tt
        mt = t < L
        if SAVE_STATES:
            tl.store(hin_ptr + (chan * n_chunks + c) * N + n, h, mask=mn)
        u = tl.load(u_ptr + row + t, mask=mt, other=0.0).to(ACC)
        raw = tl.load(dt_ptr + row + t, mask=mt, other=0.0).to(ACC)
        if HAS_BIAS:
            raw = raw + bias
        step = raw
        if SOFTPLUS:  # torch's softplus (threshold 20); log1p(e) = log(w) e / (w - 1), w = 1 + e
            e = tl.exp(tl.minimum(raw, 20.0))
            w = 1.0 + e
            lp = tl.where(w == 1.0, e, tl.log(w) * (e / tl.where(w == 1.0, 1.0, w - 1.0)))
            step = tl.where(raw > 20.0, raw, lp)
        step = tl.where(mt, step, 0.0)
        m2 = mn[:, None] & mt[None, :]
        Bt = tl.load(b_base + n[:, None] * L + t[None, :], mask=m2, other=0.0).to(ACC)
        Ct = tl.load(c_base + n[:, None] * L + t[None, :], mask=m2, other=0.0).to(ACC)
        dA = tl.exp(step[None, :] * A[:, None])
        dBu = (step * u)[None, :] * Bt
        pa, pb = tl.associative_scan((dA, dBu), 1, lin_combine)
        hs = pa * h[:, None] + pb
        y = tl.reduce(hs * Ct, 0, add_combine)
        if HAS_D:
            y = y + Dv * u
        if HAS_Z:
            z = tl.load(z_ptr + row + t, mask=mt, other=0.0).to(ACC)
            y = y * (z / (1.0 + tl.exp(-z)))
        tl.store(out_ptr + row + t, y.to(out_ptr.dtype.element_ty), mask=mt)
        # past the end of the sequence step = 0 keeps the state: the last column is h[min(end, L) - 1]
        h = tl.reduce(tl.where(tt[None, :] == BLOCK_T - 1, hs, 0.0), 1, add_combine)
    if STORE_LAST:
        tl.store(last_ptr + chan * N + n, h, mask=mn)


@triton.jit
def scan_bwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, hin_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
    dim, L, N, n_chunks, dpg_b, dpg_c, groups_b, groups_c,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DLAST: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, ACC: tl.constexpr,
):
    d = tl.program_id(0)
    b = tl.program_id(1)
    n = tl.arange(0, BLOCK_N)
    tt = tl.arange(0, BLOCK_T)
    mn = n < N
    chan = (b * dim + d).to(tl.int64)
    row = chan * L
    off_b = ((b * groups_b + d // dpg_b).to(tl.int64) * N) * L
    off_c = ((b * groups_c + d // dpg_c).to(tl.int64) * N) * L
    A = tl.load(A_ptr + d * N + n, mask=mn, other=0.0).to(ACC)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(ACC)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(ACC)
    if HAS_DLAST:
        g = tl.load(dlast_ptr + chan * N + n, mask=mn, other=0.0).to(ACC)
    else:
        g = tl.full([BLOCK_N], 0.0, ACC)
    dA_acc = tl.full([BLOCK_N], 0.0, ACC)
    dD_acc = tl.full([BLOCK_T], 0.0, ACC)
    dbias_acc = tl.full([BLOCK_T], 0.0, ACC)
    for ci in range(0, n_chunks):
        c = n_chunks - 1 - ci
        t = c * BLOCK_T + tt
        mt = t < L
        m2 = mn[:, None] & mt[None, :]
        # recompute this chunk's states from the saved entering state
        h0 = tl.load(hin_ptr + (chan * n_chunks + c) * N + n, mask=mn, other=0.0)
        u = tl.load(u_ptr + row + t, mask=mt, other=0.0).to(ACC)
        raw = tl.load(dt_ptr + row + t, mask=mt, other=0.0).to(ACC)
        if HAS_BIAS:
            raw = raw + bias
        step = raw
        if SOFTPLUS:
            e = tl.exp(tl.minimum(raw, 20.0))
            w = 1.0 + e
            lp = tl.where(w == 1.0, e, tl.log(w) * (e / tl.where(w == 1.0, 1.0, w - 1.0)))
            step = tl.where(raw > 20.0, raw, lp)
            dsoft = tl.where(raw > 20.0, 1.0, e / w)  # d softplus / d raw, as torch computes it
        step = tl.where(mt, step, 0.0)
        Bt = tl.load(B_ptr + off_b + n[:, None] * L + t[None, :], mask=m2, other=0.0).to(ACC)
        Ct = tl.load(C_ptr + off_c + n[:, None] * L + t[None, :], mask=m2, other=0.0).to(ACC)
        dA = tl.exp(step[None, :] * A[:, None])
        dBu = (step * u)[None, :] * Bt
        pa, pb = tl.associative_scan((dA, dBu), 1, lin_combine)
        hs = pa * h0[:, None] + pb
        # gradient of y = sum_n C h from d out (through the SiLU(z) gate and the D skip)
        dout = tl.load(dout_ptr + row + t, mask=mt, other=0.0).to(ACC)
        if HAS_Z:
            z = tl.load(z_ptr + row + t, mask=mt, other=0.0).to(ACC)
            sz = 1.0 / (1.0 + tl.exp(-z))
            pre = tl.reduce(hs * Ct, 0, add_combine)
            if HAS_D:
                pre = pre + Dv * u
            dz = dout * pre * sz * (1.0 + z * (1.0 - sz))
            tl.store(dz_ptr + row + t, dz.to(dz_ptr.dtype.element_ty), mask=mt)
            dy = dout * z * sz
        else:
            dy = dout
        dy = tl.where(mt, dy, 0.0)
        # adjoint g[t] = C[t] dy[t] + exp(delta[t+1] A) g[t+1], reverse scan; g past the chunk is carried
        t1 = t + 1
        m1 = t1 < L
        step1 = tl.load(dt_ptr + row + t1, mask=m1, other=0.0).to(ACC)
        if HAS_BIAS:
            step1 = step1 + bias
        if SOFTPLUS:
            e1 = tl.exp(tl.minimum(step1, 20.0))
            w1 = 1.0 + e1
            lp1 = tl.where(w1 == 1.0, e1, tl.log(w1) * (e1 / tl.where(w1 == 1.0, 1.0, w1 - 1.0)))
            step1 = tl.where(step1 > 20.0, step1, lp1)
        a1 = tl.where(m1[None, :], tl.exp(step1[None, :] * A[:, None]), 1.0)
        sa, sb = tl.associative_scan((a1, Ct * dy[None, :]), 1, lin_combine, reverse=True)
        gs = sa * g[:, None] + sb
        g = tl.reduce(tl.where(tt[None, :] == 0, gs, 0.0), 1, add_combine)
        # input gradients
        tl.atomic_add(dC_ptr + off_c + n[:, None] * L + t[None, :], hs * dy[None, :], mask=m2)
        tl.atomic_add(dB_ptr + off_b + n[:, None] * L + t[None, :], gs * (step * u)[None, :], mask=m2)
        sgb = tl.reduce(gs * Bt, 0, add_combine)
        du = step * sgb
        if HAS_D:
            du = du + Dv * dy
            dD_acc += dy * u
        tl.store(du_ptr + row + t, du.to(du_ptr.dtype.element_ty), mask=mt)
        x = gs * (hs - dBu)  # g[t] * exp(delta[t] A) * h[t-1]
        dstep = tl.reduce(x * A[:, None], 0, add_combine) + u * sgb
        dA_acc += tl.reduce(x * step[None, :], 1, add_combine)
        if SOFTPLUS:
            dstep = dstep * dsoft
        dstep = tl.where(mt, dstep, 0.0)
        if HAS_BIAS:
            dbias_acc += dstep
        tl.store(ddt_ptr + row + t, dstep.to(ddt_ptr.dtype.element_ty), mask=mt)
    tl.store(dA_ptr + chan * N + n, dA_acc, mask=mn)
    if HAS_D:
        tl.store(dD_ptr + chan, tl.reduce(dD_acc, 0, add_combine))
    if HAS_BIAS:
        tl.store(dbias_ptr + chan, tl.reduce(dbias_acc, 0, add_combine))
