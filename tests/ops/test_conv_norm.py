"""Causal depthwise conv1d and RMSNorm / LayerNorm / fused add+norm semantics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genodiff.ops import LayerNorm, RMSNorm, add_norm, causal_conv1d
from genodiff.ops import _scan_numba
from genodiff.ops.conv import causal_conv1d_ref


def conv_shifts(x, w, b, act):
    """The same definition as one shifted multiply-add per tap (K torch ops: cheap to differentiate)."""
    K, L = w.shape[1], x.shape[-1]
    xp = F.pad(x, (K - 1, 0))
    out = sum(w[:, k, None] * xp[..., k:k + L] for k in range(K))
    if b is not None:
        out = out + b[:, None]
    return F.silu(out) if act else out


def conv_loop(x, w, b, act):
    """Explicit definition: out[b, d, t] = bias[d] + sum_k w[d, k] * x[b, d, t - K + 1 + k] (x<0 := 0)."""
    Bn, D, L = x.shape
    K = w.shape[1]
    out = torch.zeros_like(x)
    for t in range(L):
        for k in range(K):
            s = t - K + 1 + k
            if s >= 0:
                out[:, :, t] += w[:, k] * x[:, :, s]
    if b is not None:
        out = out + b[:, None]
    return F.silu(out) if act else out


@pytest.mark.parametrize("K", [1, 2, 4])
@pytest.mark.parametrize("L", [1, 7, 33])
@pytest.mark.parametrize("act", [None, "silu", "swish"])
@pytest.mark.parametrize("bias", [True, False])
def test_causal_conv1d_matches_loop(K, L, act, bias):
    g = torch.Generator().manual_seed(K * 100 + L)
    x = torch.randn(2, 5, L, generator=g, dtype=torch.float64)
    w = torch.randn(5, K, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64) if bias else None
    out = causal_conv1d(x, w, b, act)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out, conv_loop(x, w, b, act), atol=1e-12)


def test_causal_conv1d_is_causal_and_differentiable():
    x = torch.randn(1, 3, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    out = causal_conv1d(x, w, b, "silu")
    (gx,) = torch.autograd.grad(out[:, :, 5].sum(), [x], retain_graph=True)
    assert gx[:, :, 6:].abs().max() == 0 and gx[:, :, 2:6].abs().min() > 0
    assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a, activation="silu"), (x[:, :, :6], w, b), fast_mode=True)


@pytest.mark.parametrize("shape", [(1, 3, 5, 4), (2, 5, 33, 2), (4, 64, 300, 4), (3, 16, 129, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", [None, "silu"])
@pytest.mark.parametrize("bias", [True, False])
def test_cpu_kernels_forward_and_gradients_match_float64_oracle(shape, dtype, act, bias):
    """The numba conv (forward, d/dx, d/dweight, d/dbias; small shapes run the serial kernel, (4, 64, 300, 4)
    with two threads the parallel one) against autograd through the float64 definition (checked against the
    loop first)."""
    Bn, D, L, K = shape
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(Bn, D, L, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(D, K, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(D, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    gy = torch.randn(Bn, D, L, generator=g, dtype=torch.float64)
    leaves = [x, w] + ([b] if bias else [])
    ref = conv_shifts(x, w, b, act)
    if L <= 33:
        assert torch.allclose(ref, conv_loop(x, w, b, act), atol=1e-12)
    ref_grads = torch.autograd.grad(ref, leaves, gy)
    low = [t.detach().to(dtype).requires_grad_() for t in leaves]
    n0 = torch.get_num_threads()
    torch.set_num_threads(max(2, n0))
    try:
        out = causal_conv1d(low[0], low[1], low[2] if bias else None, act)
        grads = torch.autograd.grad(out, low, gy.to(dtype))
    finally:
        torch.set_num_threads(n0)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for got, want in zip((out,) + grads, (ref,) + ref_grads):
        assert got.dtype == dtype
        want = want.detach()
        assert float((got.detach().double() - want).abs().max()) <= tol * float(want.abs().max())


@pytest.mark.skipif(not _scan_numba.available(), reason="numba unavailable or disabled")
def test_cpu_dispatch_uses_the_numba_kernels(monkeypatch):
    """float32 / float64 CPU tensors go through ``_scan_numba.causal_conv``; other dtypes through the reference."""
    calls = []
    real = _scan_numba.causal_conv
    monkeypatch.setattr(_scan_numba, "causal_conv", lambda *a: calls.append(a[0].dtype) or real(*a))
    x, w = torch.randn(1, 2, 8), torch.randn(2, 4)
    causal_conv1d(x, w, None, "silu")
    causal_conv1d(x.double(), w.double())
    out = causal_conv1d(x.bfloat16(), w.bfloat16())
    assert calls == [torch.float32, torch.float64] and out.dtype == torch.bfloat16


def test_causal_conv1d_float32_and_bad_args():
    x = torch.randn(2, 4, 10)
    w = torch.randn(4, 3)
    assert torch.allclose(causal_conv1d(x, w), causal_conv1d_ref(x, w))
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(x, w, None, "relu")
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d(x, torch.randn(3, 3))
    with pytest.raises(ValueError, match="bias"):
        causal_conv1d(x, w, torch.randn(5))
    with pytest.raises(ValueError, match="x must be"):
        causal_conv1d(x[0], w)


def test_rmsnorm_formula_and_params():
    n = RMSNorm(8, eps=1e-6)
    assert [k for k, _ in n.named_parameters()] == ["weight"] and n.eps == 1e-6 and n.bias is None
    with torch.no_grad():
        n.weight.copy_(torch.randn(8))
    x = torch.randn(3, 5, 8)
    expect = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * n.weight
    assert torch.allclose(n(x), expect, atol=1e-6)
    xb = x.to(torch.bfloat16)
    assert n(xb).dtype == torch.bfloat16


def test_layernorm_matches_torch():
    n = LayerNorm(8, eps=1e-5)
    assert [k for k, _ in n.named_parameters()] == ["weight", "bias"] and n.eps == 1e-5
    ref = torch.nn.LayerNorm(8, eps=1e-5)
    with torch.no_grad():
        n.weight.copy_(torch.randn(8))
        n.bias.copy_(torch.randn(8))
        ref.weight.copy_(n.weight)
        ref.bias.copy_(n.bias)
    x = torch.randn(4, 8)
    assert torch.allclose(n(x), ref(x), atol=1e-6)
    ref.load_state_dict(n.state_dict())  # checkpoint-compatible names
    assert LayerNorm(8, bias=False).bias is None


@pytest.mark.parametrize("Norm", [RMSNorm, LayerNorm])
def test_add_norm_semantics(Norm):
    n = Norm(8)
    with torch.no_grad():
        n.weight.copy_(torch.randn(8))
    x = torch.randn(2, 3, 8)
    r = torch.randn(2, 3, 8)
    normed, res = add_norm(x, r, n)
    assert torch.allclose(res, x + r) and torch.allclose(normed, n(x + r), atol=1e-6)
    normed, res = add_norm(x, None, n)  # first block: residual = x
    assert torch.equal(res, x) and torch.allclose(normed, n(x), atol=1e-6)
    only = add_norm(x, r, n, prenorm=False)
    assert torch.allclose(only, n(x + r), atol=1e-6)
    # module forward with the mamba_ssm signature
    normed2, res2 = n(x, residual=r, prenorm=True)
    assert torch.allclose(normed2, n(x + r), atol=1e-6) and torch.allclose(res2, x + r)


def test_add_norm_dtypes_residual_in_fp32():
    n = RMSNorm(8)
    x = torch.randn(2, 8).to(torch.bfloat16)
    r = torch.randn(2, 8).to(torch.bfloat16)
    normed, res = add_norm(x, r, n, residual_in_fp32=True)
    assert normed.dtype == torch.bfloat16 and res.dtype == torch.float32
    assert torch.equal(res, x.float() + r.float())  # sum computed in float32, not rounded to bf16
    normed, res = add_norm(x, r, n, residual_in_fp32=False)
    assert res.dtype == torch.bfloat16
    r32 = torch.randn(2, 8)
    normed, res = add_norm(x, r32, n)  # residual stream already fp32 stays fp32
    assert res.dtype == torch.float32 and normed.dtype == torch.bfloat16
    normed, res = add_norm(x, None, n, residual_in_fp32=True)
    assert res.dtype == torch.float32


def test_add_norm_gradients_flow_to_both_streams():
    n = LayerNorm(6)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    normed, res = add_norm(x, r, n)
    gx, gr = torch.autograd.grad((normed * torch.randn_like(normed)).sum() + res.sum(), [x, r])
    assert torch.allclose(gx, gr)
    assert n.weight.dtype == torch.float32
