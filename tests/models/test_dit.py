"""DiT (MDLM), causal transformer AR baseline, registry."""

import pytest
import torch

from genodiff.models import DiT, DiTConfig, TransformerAR, TransformerARConfig, build_model


def _randomize(model, seed=0, scale=0.05):
    """Break adaLN-zero / zero-init output so every pathway is active."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def tiny_dit(**kw):
    torch.manual_seed(0)
    return DiT(DiTConfig.tiny(**kw))


def test_adaln_zero_init_gives_zero_logits():
    m = tiny_dit().eval()
    ids = torch.randint(0, 12, (2, 10))
    with torch.no_grad():
        out = m(ids, torch.rand(2))
    assert out.shape == (2, 10, 12) and out.dtype == torch.float32
    assert torch.count_nonzero(out) == 0
    for blk in m.blocks:  # blocks are the identity at init
        assert torch.count_nonzero(blk.adaLN_modulation.weight) == 0


def test_time_conditioning_on_and_off():
    ids = torch.randint(0, 12, (2, 10))
    on = _randomize(tiny_dit(time_conditioning=True))
    with torch.no_grad():
        a, b = on(ids, torch.tensor([0.1, 0.2])), on(ids, torch.tensor([0.9, 0.5]))
    assert (a - b).abs().max() > 1e-4
    off = _randomize(tiny_dit(time_conditioning=False))
    with torch.no_grad():
        a, b, c = off(ids, torch.tensor([0.1, 0.2])), off(ids, torch.tensor([0.9, 0.5])), off(ids)
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_mask_isolates_padded_positions(side):
    m = _randomize(tiny_dit())
    B, L, npad = 2, 12, 4
    ids = torch.randint(7, 11, (B, L))
    mask = torch.ones(B, L, dtype=torch.bool)
    pad = slice(L - npad, L) if side == "right" else slice(0, npad)
    mask[0, pad] = False
    ids2 = ids.clone()
    ids2[0, pad] = torch.tensor([4, 3, 0, 11])  # different garbage at padded positions
    t = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        a, b = m(ids, t, mask), m(ids2, t, mask)
        unmasked = m(ids2, t)
    real = mask[0]
    assert torch.allclose(a[0, real], b[0, real], atol=1e-6)
    assert torch.isfinite(a).all()
    assert torch.allclose(a[1], b[1], atol=1e-6)
    assert (unmasked[0, real] - a[0, real]).abs().max() > 1e-4  # the mask does something
    # equal to running the unpadded sequence alone
    with torch.no_grad():
        alone = m(ids[:1, real], t[:1])
    assert torch.allclose(alone[0], a[0, real], atol=1e-5)


def test_fully_padded_row_is_finite():
    m = _randomize(tiny_dit())
    ids = torch.randint(7, 11, (2, 6))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1] = True
    with torch.no_grad():
        assert torch.isfinite(m(ids, None, mask)).all()


def test_dit_hidden_states_and_dropout_modes():
    m = _randomize(tiny_dit(dropout=0.5))
    ids = torch.randint(0, 12, (2, 8))
    with torch.no_grad():
        assert m.hidden_states(ids).shape == (2, 8, 64)
        assert torch.equal(m(ids), m(ids))  # eval: deterministic
    m.train()
    with torch.no_grad():
        assert not torch.equal(m(ids), m(ids))


def test_dit_small_parameter_count():
    with torch.device("meta"):
        m = DiT(DiTConfig.small())
        m_gpt2 = DiT(DiTConfig.small(vocab_size=50258))
    H, C, V = 768, 128, 12
    per_block = 3 * H * H + H * H + (H * 4 * H + 4 * H + 4 * H * H + H) + (C * 6 * H + 6 * H) + 2 * H
    expected = (V * H + (256 * C + C + C * C + C) + 12 * per_block + (H + H * V + V + C * 2 * H + 2 * H))
    n = sum(p.numel() for p in m.parameters())
    assert n == expected == 92_399_116
    # MDLM paper: DiT small with the GPT-2 vocabulary has ~169M parameters
    assert 169e6 <= sum(p.numel() for p in m_gpt2.parameters()) < 170e6


@pytest.mark.parametrize("with_mask", [False, True])
def test_transformer_ar_is_causal(with_mask):
    torch.manual_seed(0)
    m = _randomize(TransformerAR(TransformerARConfig(hidden_size=64, n_blocks=2, n_heads=4)))
    ids = torch.randint(7, 11, (2, 16))
    ids2 = ids.clone()
    ids2[:, 9:] = torch.randint(0, 12, (2, 7))
    mask = torch.ones(2, 16, dtype=torch.bool) if with_mask else None
    with torch.no_grad():
        a, b = m(ids, attention_mask=mask), m(ids2, attention_mask=mask)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-4
    assert a.shape == (2, 16, 12)


def test_registry():
    m = build_model("dit", hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16)
    assert isinstance(m, DiT)
    assert build_model("caduceus", d_model=8, n_layer=1).config.d_model == 8
    assert build_model("mamba_lm", d_model=8, n_layer=1).config.n_layer == 1
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")
    with pytest.raises(TypeError):
        build_model("dit", hidden=3)
