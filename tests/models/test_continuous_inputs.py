"""The backbones' continuous-input entry point (``input_dim > 0``, float inputs; used by Plaid)."""

from __future__ import annotations

import pytest
import torch

from genodiff.models.registry import build_model
from genodiff.models.rcps import rc_hidden, rc_logits

SPECS = {
    "caduceus_ps": dict(name="caduceus", d_model=16, n_layer=2, rcps=True),
    "caduceus_ph": dict(name="caduceus", d_model=16, n_layer=2, rcps=False),
    "dit": dict(name="dit", hidden_size=32, n_blocks=2, n_heads=2, cond_dim=8),
}


def _build(kind: str, seed: int = 0, **extra):
    spec = {**SPECS[kind], **extra}
    torch.manual_seed(seed)
    return build_model(spec.pop("name"), **spec)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_input_dim_zero_leaves_the_model_unchanged(kind):
    """The projection is created last: with the same seed every other parameter is drawn identically, and with
    input_dim = 0 there is no new parameter (token-id models are bit-identical to before)."""
    plain, cont = _build(kind), _build(kind, input_dim=12)
    extra = set(cont.state_dict()) - set(plain.state_dict())
    assert extra and all("input_proj" in k for k in extra)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, cont.state_dict()[key]), key
    ids = torch.randint(7, 11, (2, 9))
    torch.testing.assert_close(plain(ids), cont(ids), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_float_inputs_give_logits_and_gradients(kind):
    model = _build(kind, input_dim=12)
    with torch.no_grad():  # DiT starts as the zero function (adaLN-zero): give every weight a value
        for p in model.parameters():
            p.normal_(std=0.1)
    v = torch.randn(3, 9, 12, requires_grad=True)
    out = model(v, time=torch.rand(3))
    assert out.shape[:2] == (3, 9) and torch.isfinite(out).all()
    out.sum().backward()
    assert v.grad is not None and float(v.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="input_dim"):
        model(torch.randn(3, 9, 5))
    with pytest.raises(ValueError, match="input_dim"):
        _build(kind)(torch.randn(3, 9, 12))


def test_caduceus_ps_continuous_inputs_are_rc_equivariant():
    """PS: model(rc_hidden(v)) == rc_logits(model(v)) exactly (the flip over length and channels is the reverse
    complement of a continuous input); Ph has no such symmetry (control)."""
    v = torch.randn(2, 11, 12)
    ps = _build("caduceus_ps", input_dim=12)
    torch.testing.assert_close(ps(rc_hidden(v)), rc_logits(ps(v), ps.complement_map), rtol=0, atol=1e-6)
    ph = _build("caduceus_ph", input_dim=12)
    assert float((ph(rc_hidden(v)) - rc_logits(ph(v), ph.complement_map)).abs().max()) > 1e-3
