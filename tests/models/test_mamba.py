"""Mamba mixer, BiMamba and the uni-directional Mamba LM."""

import math

import pytest
import torch
import torch.nn.functional as F

from genodiff.models.bimamba import BiMamba
from genodiff.models.mamba import Mamba, MambaLM, MambaLMConfig


def _perturb(module, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def naive_mamba(m: Mamba, h: torch.Tensor) -> torch.Tensor:
    """Straight-line float64 re-derivation of mamba_simple.Mamba.forward (sequential recurrence)."""
    p = {k: v.detach().double() for k, v in m.named_parameters()}
    h = h.double()
    Bsz, L, _ = h.shape
    di, N, R, K = m.d_inner, m.d_state, m.dt_rank, m.d_conv
    xz = h @ p["in_proj.weight"].T
    x, z = xz[..., :di], xz[..., di:]
    xp = F.pad(x.transpose(1, 2), (K - 1, 0))
    w = p["conv1d.weight"][:, 0, :]
    conv = torch.stack([(xp[:, :, t:t + K] * w).sum(-1) for t in range(L)], dim=-1) + p["conv1d.bias"][:, None]
    x = F.silu(conv).transpose(1, 2)  # (B, L, di)
    dbl = x @ p["x_proj.weight"].T
    dt, Bm, Cm = dbl[..., :R], dbl[..., R:R + N], dbl[..., R + N:]
    delta = F.softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])  # (B, L, di)
    A = -torch.exp(p["A_log"])
    state = torch.zeros(Bsz, di, N, dtype=torch.float64)
    ys = []
    for t in range(L):
        state = torch.exp(delta[:, t, :, None] * A) * state + delta[:, t, :, None] * Bm[:, t, None, :] * x[:, t, :, None]
        ys.append((state * Cm[:, t, None, :]).sum(-1) + p["D"] * x[:, t])
    y = torch.stack(ys, 1) * F.silu(z)
    return y @ p["out_proj.weight"].T


def test_mamba_parameter_names_shapes_and_init():
    torch.manual_seed(0)
    m = Mamba(d_model=40, d_state=8, d_conv=4, expand=2, dt_min=1e-3, dt_max=1e-1)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "A_log": (80, 8), "D": (80,), "in_proj.weight": (160, 40), "conv1d.weight": (80, 1, 4),
        "conv1d.bias": (80,), "x_proj.weight": (3 + 16, 80), "dt_proj.weight": (80, 3), "dt_proj.bias": (80,),
        "out_proj.weight": (40, 80),
    }
    assert m.dt_rank == math.ceil(40 / 16)
    assert torch.allclose(m.A_log, torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(80, 8))
    assert torch.equal(m.D, torch.ones(80))
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    bound = m.dt_rank ** -0.5
    assert m.dt_proj.weight.abs().max() <= bound
    assert getattr(m.dt_proj.bias, "_no_reinit", False)


def test_mamba_matches_naive_recurrence():
    torch.manual_seed(1)
    m = _perturb(Mamba(d_model=24, d_state=8, expand=2), seed=1, scale=0.05)
    h = torch.randn(2, 37, 24)
    with torch.no_grad():
        out = m(h)
    ref = naive_mamba(m, h)
    assert (out.double() - ref).abs().max().item() < 1e-5


def test_mamba_is_causal():
    torch.manual_seed(2)
    m = Mamba(d_model=16, d_state=4)
    h = torch.randn(1, 30, 16)
    h2 = h.clone()
    h2[:, 15:] = torch.randn(1, 15, 16)
    with torch.no_grad():
        a, b = m(h), m(h2)
    assert torch.equal(a[:, :15], b[:, :15])
    assert not torch.allclose(a[:, 15:], b[:, 15:])


@pytest.mark.parametrize("strategy", ["add", "ew_multiply"])
@pytest.mark.parametrize("tie", [True, False])
def test_bimamba_matches_definition(strategy, tie):
    torch.manual_seed(3)
    bm = _perturb(BiMamba(24, bidirectional_strategy=strategy, bidirectional_weight_tie=tie, d_state=8), seed=3,
                  scale=0.05)
    h = torch.randn(2, 19, 24)
    with torch.no_grad():
        fwd = bm.mamba_fwd(h)
        rev = bm.mamba_rev(h.flip(1)).flip(1)
        ref = fwd + rev if strategy == "add" else fwd * rev
        out = bm(h)
    assert (out - ref).abs().max().item() < 1e-5
    shared = bm.mamba_rev.in_proj.weight is bm.mamba_fwd.in_proj.weight
    assert shared == tie and (bm.mamba_rev.out_proj.weight is bm.mamba_fwd.out_proj.weight) == tie
    assert bm.mamba_rev.conv1d.weight is not bm.mamba_fwd.conv1d.weight
    n_params = sum(p.numel() for p in bm.parameters())
    one = sum(p.numel() for p in bm.mamba_fwd.parameters())
    proj = bm.mamba_fwd.in_proj.weight.numel() + bm.mamba_fwd.out_proj.weight.numel()
    assert n_params == (2 * one - proj if tie else 2 * one)


def test_bimamba_backward_reaches_all_parameters():
    torch.manual_seed(4)
    bm = BiMamba(16, d_state=4)
    h = torch.randn(2, 11, 16, requires_grad=True)
    bm(h).square().mean().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    for name, p in bm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_unidirectional_bimamba_is_plain_mamba():
    torch.manual_seed(5)
    bm = BiMamba(16, bidirectional=False, d_state=4)
    assert bm.mamba_rev is None
    h = torch.randn(1, 9, 16)
    with torch.no_grad():
        assert torch.equal(bm(h), bm.mamba_fwd(h))


def test_mamba_lm_is_causal_and_tied():
    torch.manual_seed(6)
    m = MambaLM(MambaLMConfig(d_model=32, n_layer=2, ssm_cfg={"d_state": 8})).eval()
    assert m.lm_head.weight is m.backbone.embedding.weight
    ids = torch.randint(7, 11, (2, 40))
    ids2 = ids.clone()
    ids2[:, 25:] = torch.randint(7, 11, (2, 15))
    with torch.no_grad():
        a, b = m(ids), m(ids2)
    assert a.dtype == torch.float32 and a.shape == (2, 40, 16)
    assert torch.equal(a[:, :25], b[:, :25])
    assert m.hidden_states(ids).shape == (2, 40, 32)
