"""The fused training Mamba mixer (genodiff.ops.mixer_train): forward and every gradient against a float64 oracle
(the general path with the sequential reference scan), its dispatch, and whole models against the general path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.mamba import Mamba
from genodiff.ops import _scan_numba, mixer, scan_backend

pytestmark = pytest.mark.skipif(not _scan_numba.available(), reason="numba not installed")


def _grads(m, xz, gy, reverse, backend=None):
    """y and the gradients of sum(y * gy) w.r.t. xz and every parameter of ``m`` (dict by name)."""
    xz = xz.detach().clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    if backend is None:
        y = m.ssm(xz, reverse=reverse)
    else:
        with scan_backend(backend):
            y = m.ssm(xz, reverse=reverse)
    (y * gy.to(y.dtype)).sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in m.named_parameters() if p.grad is not None}
    grads["xz"] = xz.grad.detach().clone()
    return y.detach(), grads


def _oracle(m, xz, gy, reverse):
    """The general path in float64 with the sequential reference scan."""
    m64 = Mamba(m.d_model, d_state=m.d_state, d_conv=m.d_conv, conv_bias=m.conv1d.bias is not None).double()
    m64.load_state_dict(m.state_dict())
    return _grads(m64, xz.double(), gy.double(), reverse, backend="reference")


def _rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("batch,L,d_model,d_state,d_conv,conv_bias", [
    (1, 1, 8, 4, 4, True),       # one position: one step, one chunk
    (2, 3, 16, 16, 4, True),     # L < d_conv, L < the chunk
    (3, 257, 48, 16, 4, True),   # the tiny model's width; L not a multiple of the chunk
    (1, 130, 40, 8, 2, False),   # no conv bias, width 2; batch 1 splits the channels (with 2+ threads)
    (2, 64, 118, 16, 4, True),   # the paper model's width (D = 236: not a multiple of 8, dt_rank 8)
])
@pytest.mark.parametrize("reverse", [False, True])
def test_forward_and_gradients_match_float64_oracle(perturbed_mamba, count_calls, batch, L, d_model, d_state, d_conv,
                                                    conv_bias, reverse):
    m = perturbed_mamba(d_model, d_state, d_conv, conv_bias, seed=batch * 1000 + L, dt_weight_scale=3.0)
    torch.manual_seed(L)
    xz = torch.randn(batch, L, 2 * m.d_inner)
    gy = torch.randn(batch, L, m.d_inner)
    spy = count_calls(_scan_numba, "mixer_train")
    y, grads = _grads(m, xz, gy, reverse)
    assert spy.calls == 1
    y_ref, grads_ref = _oracle(m, xz, gy, reverse)
    assert y.dtype == torch.float32 and y.shape == (batch, L, m.d_inner)
    assert _rel(y, y_ref) < 2e-6
    assert set(grads) == set(grads_ref)
    for name, g_ref in grads_ref.items():
        assert grads[name].shape == g_ref.shape, name
        assert _rel(grads[name], g_ref) < 1e-5, (name, _rel(grads[name], g_ref))
    # negative control: the other direction's gradients are those of a different function
    if L > 3:
        _, grads_other = _oracle(m, xz, gy, not reverse)
        assert _rel(grads["A_log"], grads_other["A_log"]) > 1e-2
        assert _rel(grads["xz"], grads_other["xz"]) > 1e-2


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_checkpoint_chunk_does_not_change_the_result(monkeypatch, perturbed_mamba, chunk):
    m = perturbed_mamba(24, 8, 4, True, seed=3, dt_weight_scale=3.0)
    xz, gy = torch.randn(2, 100, 2 * m.d_inner), torch.randn(2, 100, m.d_inner)
    y0, g0 = _grads(m, xz, gy, True)
    monkeypatch.setattr(_scan_numba, "_TRAIN_CHUNK", chunk)
    y1, g1 = _grads(m, xz, gy, True)
    assert _rel(y1, y0) < 1e-6
    for name in g0:
        assert _rel(g1[name], g0[name]) < 2e-6, name


def test_serial_and_parallel_kernels_agree_with_the_general_path(perturbed_mamba, count_calls):
    m = perturbed_mamba(48, 16, 4, True, seed=11, dt_weight_scale=3.0)
    xz, gy = torch.randn(4, 300, 2 * m.d_inner), torch.randn(4, 300, m.d_inner)  # above the serial cut-off
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1, g1 = _grads(m, xz, gy, False)
        torch.set_num_threads(2)
        if _scan_numba._num_threads(_scan_numba._kernels()["numba"]) < 2:
            pytest.skip("numba limited to one thread (NUMBA_NUM_THREADS=1): the parallel kernels never run")
        y2, g2 = _grads(m, xz, gy, False)
    finally:
        torch.set_num_threads(threads)
    spy = count_calls(_scan_numba, "mixer_train")
    y_gen, g_gen = _grads(m, xz, gy, False, backend="torch")  # an explicit non-numba backend: the general path
    assert spy.calls == 0
    for y in (y1, y2):
        assert _rel(y, y_gen) < 2e-6
    for name in g_gen:
        assert _rel(g1[name], g_gen[name]) < 1e-5, name
        assert _rel(g2[name], g_gen[name]) < 1e-5, name


def test_dispatch(count_calls):
    m = Mamba(16)
    xz = torch.randn(2, 20, 2 * m.d_inner)
    params = list(m.parameters())
    assert mixer.mixer_train_applies(xz, *params)
    assert not mixer.mixer_inference_applies(xz, *params)
    assert not mixer.mixer_train_applies(xz.double(), *[p.double() for p in params])  # float64: general path
    with torch.no_grad():
        assert not mixer.mixer_train_applies(xz, *params) and mixer.mixer_inference_applies(xz, *params)
    with scan_backend("torch"):
        assert not mixer.mixer_train_applies(xz, *params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not mixer.mixer_train_applies(xz, *params)
    spy = count_calls(_scan_numba, "mixer_train")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m.ssm(xz)
    assert spy.calls == 0
    y = m.ssm(xz.requires_grad_())
    assert spy.calls == 1 and y.grad_fn is not None
    with pytest.raises(ValueError, match="2 \\* d_inner"):
        mixer.mixer_train(torch.randn(2, 5, 7), *([None] * 7))
    with pytest.raises(ValueError, match="float32 CPU"):
        mixer.mixer_train(xz.double(), m.conv1d.weight.view(m.d_inner, -1), m.conv1d.bias, m.x_proj.weight,
                          m.dt_proj.weight, m.dt_proj.bias, -torch.exp(m.A_log), m.D)


@pytest.mark.parametrize("batch,L", [(2, 0), (0, 5)])
def test_empty_input(batch, L):
    m = Mamba(16)
    xz = torch.randn(batch, L, 2 * m.d_inner, requires_grad=True)
    y = m.ssm(xz, reverse=True)
    assert y.shape == (batch, L, m.d_inner)
    y.sum().backward()
    assert xz.grad.shape == xz.shape and m.A_log.grad.abs().sum() == 0


def test_non_contiguous_input_frozen_parameters_and_float64_default_dtype(perturbed_mamba):
    m = perturbed_mamba(24, 8, 4, True, seed=5, dt_weight_scale=3.0)
    m.conv1d.requires_grad_(False)
    m.D.requires_grad_(False)
    base = torch.randn(2, 2 * m.d_inner, 90)
    xz = base.transpose(1, 2)  # (2, 90, 2 D), not contiguous
    gy = torch.randn(2, 90, m.d_inner)
    _, ref = _oracle(m, xz.contiguous(), gy, False)
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)  # the kernels' buffers must not follow it
        y, grads = _grads(m, xz, gy, False)
    finally:
        torch.set_default_dtype(default)
    assert y.dtype == torch.float32
    assert "conv1d.weight" not in grads and "D" not in grads
    for name, g in grads.items():
        assert _rel(g, ref[name]) < 1e-5, name


def test_long_sequence_parameter_gradients(perturbed_mamba):
    """The parameter gradients sum L terms per channel (kept in float64 in the kernels)."""
    m = perturbed_mamba(8, 4, 4, True, seed=9, dt_weight_scale=3.0)
    xz, gy = torch.randn(1, 6000, 2 * m.d_inner), torch.randn(1, 6000, m.d_inner)
    _, grads = _grads(m, xz, gy, True)
    _, ref = _oracle(m, xz, gy, True)
    for name in ("conv1d.weight", "conv1d.bias", "A_log", "D", "dt_proj.weight", "dt_proj.bias"):
        assert _rel(grads[name], ref[name]) < 1e-5, (name, _rel(grads[name], ref[name]))


@pytest.mark.parametrize("rcps", [False, True])
def test_caduceus_training_gradients_equal_the_general_path(count_calls, rcps):
    torch.manual_seed(0)
    model = Caduceus(CaduceusConfig(d_model=32, n_layer=2, rcps=rcps))
    ids = torch.randint(0, 5, (2, 200))

    def loss_and_grads(backend):
        model.zero_grad(set_to_none=True)
        with scan_backend(backend):
            logits = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    spy = count_calls(_scan_numba, "mixer_train")
    loss_fused, g_fused = loss_and_grads("auto")
    assert spy.calls == 2 * 2  # a forward and a reverse mixer per layer (PS: both strands stacked in one batch)
    loss_gen, g_gen = loss_and_grads("torch")
    assert abs(loss_fused - loss_gen) < 1e-5
    assert set(g_fused) == set(g_gen)
    for name, g in g_gen.items():
        assert _rel(g_fused[name], g) < 2e-4, (name, _rel(g_fused[name], g))
