"""Caduceus-Ph / Caduceus-PS: structure, parameter count, RC equivariance, post-hoc conjoining."""

import pytest
import torch

from genodiff.data.genome.vocab import COMPLEMENT_MAP
from genodiff.models import ClassificationHead, build_model
from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.rcps import rc_hidden, rc_logits


def _perturb(model, seed=0):
    """Move every parameter away from its (often symmetric / 0 / 1) init, keeping ties."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters are visited once
            p.add_(torch.randn(p.shape, generator=g) * (0.2 if "weight" in name and p.dim() == 1 else 0.05))
    return model


def tiny(**kw):
    base = dict(d_model=16, n_layer=2, ssm_cfg={"d_state": 4, "expand": 2})
    base.update(kw)
    torch.manual_seed(0)
    return _perturb(Caduceus(CaduceusConfig(**base))).eval()


def dna(batch=3, length=33, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, 12, (batch, length), generator=g)
    ids[0, 5] = 3  # [MASK]
    ids[1, -3:] = 4  # [PAD]
    return ids


def test_paper_config_parameter_count():
    for rcps in (False, True):
        m = build_model("caduceus_ps" if rcps else "caduceus_ph")
        n = sum(p.numel() for p in m.parameters())  # tied parameters counted once
        assert n == 470_702, n  # the paper's "~470k"
        assert m.config.d_model == 118 and m.config.n_layer == 4 and m.config.padded_vocab_size == 16


def test_shapes_dtype_and_ties():
    for rcps in (False, True):
        m = tiny(rcps=rcps)
        ids = dna()
        with torch.no_grad():
            logits = m(ids, time=torch.rand(3), attention_mask=ids != 4)
            hid = m.hidden_states(ids)
        assert logits.shape == (3, 33, 16) and logits.dtype == torch.float32
        assert hid.shape == (3, 33, 32 if rcps else 16) and m.hidden_size == hid.shape[-1]
        emb = m.backbone.embeddings.word_embeddings.weight
        head = m.lm_head.weight
        assert head is emb
        for layer in m.backbone.layers:
            mix = layer.mixer.submodule if rcps else layer.mixer
            assert mix.mamba_rev.in_proj.weight is mix.mamba_fwd.in_proj.weight
            assert mix.mamba_rev.out_proj.weight is mix.mamba_fwd.out_proj.weight


def test_complement_map_padded():
    cfg = CaduceusConfig()
    assert cfg.complement_list()[:12] == list(COMPLEMENT_MAP) and cfg.complement_list()[12:] == [12, 13, 14, 15]
    with pytest.raises(ValueError):
        CaduceusConfig(complement_map=[1, 1, 2]).complement_list()
    with pytest.raises(ValueError):
        CaduceusConfig(ssm_cfg={"d_staet": 4})


@pytest.mark.parametrize("n_layer", [1, 2, 3])
@pytest.mark.parametrize("fused", [True, False])
def test_ps_exact_rc_equivariance(n_layer, fused):
    m = tiny(rcps=True, n_layer=n_layer, fused_add_norm=fused)
    ids = dna()
    rc = m.rc_input(ids)
    with torch.no_grad():
        lf, lr = m(ids), m(rc)
        hf, hr = m.hidden_states(ids), m.hidden_states(rc)
    assert (lr - rc_logits(lf, m.complement_map)).abs().max().item() < 1e-5
    assert (hr - rc_hidden(hf)).abs().max().item() < 1e-5
    assert lf.abs().max() > 0.1  # not trivially zero


def test_ps_fused_and_unfused_differ_by_the_half_swap():
    # same weights, different block semantics (the official fused RCPS block swaps halves)
    a = tiny(rcps=True, fused_add_norm=True)
    b = Caduceus(CaduceusConfig(d_model=16, n_layer=2, ssm_cfg={"d_state": 4}, rcps=True, fused_add_norm=False))
    sd = {k.replace("norm.weight", "norm.submodule.weight").replace("norm_f.weight", "norm_f.submodule.weight"): v
          for k, v in a.state_dict().items()}
    b.load_state_dict(sd)
    b.tie_weights()
    ids = dna()
    with torch.no_grad():
        assert (a(ids) - b(ids)).abs().max() > 1e-3
    assert "backbone.layers.0.norm.submodule.weight" in b.state_dict()
    assert "backbone.norm_f.submodule.weight" in b.state_dict()


def test_ph_fused_equals_unfused():
    a = tiny(rcps=False, fused_add_norm=True)
    b = Caduceus(CaduceusConfig(d_model=16, n_layer=2, ssm_cfg={"d_state": 4}, fused_add_norm=False))
    b.load_state_dict(a.state_dict())
    ids = dna()
    with torch.no_grad():
        assert torch.equal(a(ids), b(ids))


def test_ph_post_hoc_conjoining():
    m = tiny(rcps=False)
    ids = dna()
    rc = m.rc_input(ids)
    with torch.no_grad():
        plain_gap = (m(rc) - rc_logits(m(ids), m.complement_map)).abs().max().item()
        cf, cr = m.conjoined_logits(ids), m.conjoined_logits(rc)
    assert plain_gap > 1e-2  # Ph alone is not equivariant
    assert (cr - rc_logits(cf, m.complement_map)).abs().max().item() < 1e-5


def test_rc_input_is_involution():
    m = tiny()
    ids = dna()
    assert torch.equal(m.rc_input(m.rc_input(ids)), ids)
    assert torch.equal(m.rc_input(torch.tensor([[7, 8, 9, 10, 11, 3]])), torch.tensor([[3, 11, 7, 8, 9, 10]]))


def test_backward_all_parameters_get_gradients():
    for rcps in (False, True):
        m = tiny(rcps=rcps).train()
        ids = dna(batch=2, length=17)
        m(ids).logsumexp(-1).mean().backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("pooling", ["mean", "max", "first", "last"])
def test_classification_head_ps_rc_invariant(pooling):
    m = tiny(rcps=True)
    head = ClassificationHead(m.hidden_size, 3, pooling=pooling, rcps=True)
    ids = dna()
    mask = ids != 4
    with torch.no_grad():
        a = head(m.hidden_states(ids), mask)
        b = head(m.hidden_states(m.rc_input(ids)), mask.flip(-1))
    assert a.shape == (3, 3)
    assert (a - b).abs().max().item() < 1e-5


@pytest.mark.parametrize("rcps", [False, True])
def test_layernorm_and_ew_multiply_variants(rcps):
    m = tiny(rcps=rcps, rms_norm=False, bidirectional_strategy="ew_multiply", n_layer=1)
    assert "backbone.layers.0.norm.bias" in m.state_dict()
    ids = dna()
    with torch.no_grad():
        lf, lr = m(ids), m(m.rc_input(ids))
    assert torch.isfinite(lf).all()
    if rcps:
        assert (lr - rc_logits(lf, m.complement_map)).abs().max().item() < 1e-5


def test_unidirectional_untied_variant():
    m = tiny(bidirectional=False, n_layer=1)
    assert m.backbone.layers[0].mixer.mamba_rev is None
    assert not any("mamba_rev" in k for k in m.state_dict())
    m2 = tiny(bidirectional_weight_tie=False, n_layer=1)
    mix = m2.backbone.layers[0].mixer
    assert mix.mamba_rev.in_proj.weight is not mix.mamba_fwd.in_proj.weight


@pytest.mark.parametrize("variant", [
    dict(fused_add_norm=True), dict(fused_add_norm=False), dict(fused_add_norm=True, num_classes=3),
    dict(fused_add_norm=True, rms_norm=False, residual_in_fp32=True), dict(fused_add_norm=False, n_layer=0),
])
def test_ps_stacked_layout_equals_the_per_block_path(variant):
    """forward runs the PS blocks on the stacked (2B, L, d) layout; output_layers=True keeps the per-block
    (B, L, 2d) path. Same values (bit for bit on the development machine; float rounding allowed), gradients
    equal to float rounding."""
    from genodiff.models.rcps import from_stacked, swap_rc_stacked, to_stacked

    torch.manual_seed(1)
    cfg = dict(d_model=24, n_layer=3, rcps=True) | variant
    model = Caduceus(CaduceusConfig(**cfg))
    num_classes = cfg.get("num_classes", 0)
    if num_classes:  # the label vectors start at zero: make them matter
        torch.nn.init.normal_(model.backbone.embeddings.label_embeddings.weight)
    ids = torch.randint(0, 5, (3, 77))
    label = torch.tensor([0, 1, num_classes]) if num_classes else None
    stacked = model(ids, label=label)
    per_block = model.lm_head(model.backbone_forward(ids, output_layers=True, label=label)[0]).float()
    assert torch.allclose(stacked, per_block, rtol=0, atol=1e-6)
    grads = []
    for logits in (stacked, per_block):
        model.zero_grad()
        (logits * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))).sum().backward(
            retain_graph=True)
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6), k
    # the layout helpers: inverse pair, and the swap is the half swap [x1 | x2] -> [x2 | x1]
    h = torch.randn(2, 5, 8)
    assert torch.equal(from_stacked(to_stacked(h)), h)
    assert torch.equal(from_stacked(swap_rc_stacked(to_stacked(h))), torch.cat([h[..., 4:], h[..., :4]], -1))
