"""Class labels in the backbones: exact RC equivariance of labelled Caduceus-PS, the DiT adaLN label path,
unconditional models untouched, one-hot embedding path, and the sequence classifier of classifier guidance."""

import pytest
import torch

from genodiff.models import build_model
from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.dit import DiT, DiTConfig
from genodiff.models.rcps import rc_hidden, rc_logits


def _perturb(model, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.2 if "label" in name else scale))
    return model.eval()


def cad(**kw):
    base = dict(d_model=16, n_layer=2, ssm_cfg={"d_state": 4, "expand": 2}, num_classes=3)
    base.update(kw)
    torch.manual_seed(0)
    return _perturb(Caduceus(CaduceusConfig(**base)))


def dna(batch=4, length=29, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, 12, (batch, length), generator=g)
    ids[0, 3] = 3  # [MASK]
    ids[1, -2:] = 4  # [PAD]
    return ids


LABELS = torch.tensor([0, 1, 2, 3])  # 3 = null


@pytest.mark.parametrize("n_layer", [1, 3])
@pytest.mark.parametrize("fused", [True, False])
def test_labelled_ps_is_exactly_rc_equivariant(n_layer, fused):
    m = cad(rcps=True, n_layer=n_layer, fused_add_norm=fused)
    ids = dna()
    rc = m.rc_input(ids)
    with torch.no_grad():
        lf, lr = m(ids, label=LABELS), m(rc, label=LABELS)
        hf, hr = m.hidden_states(ids, label=LABELS), m.hidden_states(rc, label=LABELS)
        other = m(ids, label=torch.tensor([1, 2, 0, 0]))
    assert (lr - rc_logits(lf, m.complement_map)).abs().max().item() < 1e-5
    assert (hr - rc_hidden(hf)).abs().max().item() < 1e-5
    assert (lf - other).abs().max().item() > 1e-3  # the label changes the prediction


def test_label_entering_one_strand_only_breaks_equivariance(monkeypatch):
    """Negative control: the same check detects a label vector that is not its own reverse complement."""
    m = cad(rcps=True)
    ids = dna()

    def wrong(label, batch, device):
        c = m.backbone.embeddings.label_embeddings(label.reshape(-1).expand(batch))[:, None, :]
        return torch.cat([c, c], dim=-1)  # [c | c] instead of [c | flip(c)]

    monkeypatch.setattr(m, "label_hidden", wrong)
    with torch.no_grad():
        lf, lr = m(ids, label=LABELS), m(m.rc_input(ids), label=LABELS)
    assert (lr - rc_logits(lf, m.complement_map)).abs().max().item() > 1e-3


@pytest.mark.parametrize("rcps", [False, True])
def test_null_label_default_and_zero_init(rcps):
    m = cad(rcps=rcps)
    ids = dna()
    with torch.no_grad():
        assert torch.equal(m(ids), m(ids, label=torch.full((4,), 3)))  # None = the null label
        assert torch.equal(m(ids, label=2), m(ids, label=torch.full((4,), 2)))  # a scalar label broadcasts
    torch.manual_seed(0)
    fresh = Caduceus(CaduceusConfig(d_model=16, n_layer=1, rcps=rcps, num_classes=2))
    assert torch.count_nonzero(fresh.backbone.embeddings.label_embeddings.weight) == 0  # starts unconditional


@pytest.mark.parametrize("rcps", [False, True])
def test_unconditional_model_unchanged(rcps):
    """num_classes = 0 builds the same parameters from the same random draws and rejects labels; a labelled
    model with a zero label table computes exactly what the unconditional one does."""
    torch.manual_seed(0)
    plain = Caduceus(CaduceusConfig(d_model=16, n_layer=2, rcps=rcps))
    torch.manual_seed(0)
    labelled = Caduceus(CaduceusConfig(d_model=16, n_layer=2, rcps=rcps, num_classes=2))
    sd_plain, sd_lab = plain.state_dict(), labelled.state_dict()
    assert set(sd_lab) - set(sd_plain) == {"backbone.embeddings.label_embeddings.weight"}
    assert all(torch.equal(sd_plain[k], sd_lab[k]) for k in sd_plain)
    ids = dna()
    with torch.no_grad():
        assert torch.equal(plain(ids), labelled(ids, label=torch.tensor([0, 1, 2, 0])))
    with pytest.raises(ValueError):
        plain(ids, label=torch.zeros(4, dtype=torch.long))


def test_onehot_embeddings_match_ids_and_are_differentiable():
    for rcps in (False, True):
        m = cad(rcps=rcps)
        ids = dna()
        onehot = torch.nn.functional.one_hot(ids, 12).float().requires_grad_(True)
        h_ids = m.hidden_states(ids, label=LABELS)
        h_oh = m.hidden_states(None, label=LABELS, onehot=onehot)
        assert (h_ids - h_oh).abs().max().item() < 1e-5
        h_oh.sum().backward()
        assert onehot.grad is not None and onehot.grad.abs().sum() > 0


def tiny_dit(**kw):
    torch.manual_seed(0)
    return DiT(DiTConfig.tiny(num_classes=3, **kw))


@pytest.mark.parametrize("time_conditioning", [True, False])
def test_dit_label_enters_through_adaln(time_conditioning):
    m = _perturb(tiny_dit(time_conditioning=time_conditioning))
    ids = torch.randint(7, 11, (4, 10))
    t = torch.rand(4)
    with torch.no_grad():
        a, b = m(ids, t, label=LABELS), m(ids, t, label=torch.tensor([2, 0, 1, 1]))
        assert (a - b).abs().max() > 1e-4
        assert torch.equal(m(ids, t), m(ids, t, label=torch.full((4,), 3)))
        # oracle: the adaLN conditioning is silu(sigma_map(t) + E[y]); rebuilding c by hand gives the same logits
        tt = t if time_conditioning else torch.zeros(4)
        c = torch.nn.functional.silu(m.sigma_map(tt) + m.label_embed(LABELS))
        x = m.vocab_embed(ids)
        cos, sin = m.rotary_emb(10, x.device, x.dtype)
        for blk in m.blocks:
            x = blk(x, cos, sin, c, None)
        assert torch.allclose(m.output_layer(x, c), a, atol=1e-6)
    # a zero label table is the unconditional DiT with the same weights, bit for bit
    torch.manual_seed(0)
    plain = _perturb(DiT(DiTConfig.tiny(time_conditioning=time_conditioning)))
    sd = dict(plain.state_dict())
    sd["label_embed.weight"] = torch.zeros(4, m.config.cond_dim)
    m.load_state_dict(sd)
    with torch.no_grad():
        assert torch.equal(m(ids, t, label=LABELS), plain(ids, t))


def test_dit_labels_need_adaln_and_a_conditional_model():
    with pytest.raises(ValueError):
        DiTConfig.tiny(num_classes=2, adaln=False)
    plain = DiT(DiTConfig.tiny())
    with pytest.raises(ValueError):
        plain(torch.randint(7, 11, (2, 5)), label=torch.zeros(2, dtype=torch.long))
    assert not any("label" in k for k in plain.state_dict())


@pytest.mark.parametrize("backbone", [{"name": "caduceus", "d_model": 16, "n_layer": 1, "rcps": True},
                                      {"name": "dit", "hidden_size": 32, "n_blocks": 1, "n_heads": 2, "cond_dim": 8}])
def test_sequence_classifier(backbone):
    torch.manual_seed(0)
    m = _perturb(build_model("sequence_classifier", backbone=backbone, num_classes=3, pooling="mean"))
    ids = dna(length=21)
    ids[ids == 4] = 7
    with torch.no_grad():
        logits = m(ids)
        oh = m(None, onehot=torch.nn.functional.one_hot(ids, 12).float())
    assert logits.shape == (4, 3) and logits.dtype == torch.float32
    assert (logits - oh).abs().max() < 1e-5
    if backbone.get("rcps"):  # Caduceus-PS: exactly RC-invariant class logits
        with torch.no_grad():
            assert (m(m.backbone.rc_input(ids)) - logits).abs().max() < 1e-5
    with pytest.raises(ValueError):
        build_model("sequence_classifier", backbone=backbone, num_classes=1)
