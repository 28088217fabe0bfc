"""The fused forward-only Mamba mixer (genodiff.ops.mixer) against a float64 oracle and the general path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.mamba import Mamba
from genodiff.ops import _scan_numba, mixer, scan_backend

pytestmark = pytest.mark.skipif(not _scan_numba.available(), reason="numba not installed")


def _reference(m, xz, reverse):
    """The general path in float64 with the sequential reference scan (the oracle)."""
    m64 = Mamba(m.d_model, d_state=m.d_state, d_conv=m.d_conv, conv_bias=m.conv1d.bias is not None).double()
    m64.load_state_dict(m.state_dict())
    with scan_backend("reference"), torch.no_grad():
        x = xz.double().flip(1) if reverse else xz.double()
        y = m64.ssm(x)
        return y.flip(1) if reverse else y


@pytest.mark.parametrize("batch,L,d_model,d_state,d_conv,conv_bias", [
    (1, 1, 8, 4, 4, True),       # one position: only the conv's last tap sees data
    (2, 3, 16, 16, 4, True),     # L < d_conv
    (3, 257, 48, 16, 4, True),   # the tiny model's width, batch 3 splits channels into blocks
    (1, 130, 40, 8, 2, False),   # no conv bias, width 2, D not a multiple of 8
    (2, 64, 118, 16, 4, True),   # the paper model's width (D = 236, dt_rank 8)
])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_float64_oracle(perturbed_mamba, count_calls, batch, L, d_model, d_state, d_conv, conv_bias,
                                reverse):
    m = perturbed_mamba(d_model, d_state, d_conv, conv_bias, seed=batch * 1000 + L).requires_grad_(False)
    xz = torch.randn(batch, L, 2 * m.d_inner)
    spy = count_calls(_scan_numba, "mixer_inference")
    with torch.no_grad():
        fast = m.ssm(xz, reverse=reverse)
    assert spy.calls == 1
    ref = _reference(m, xz, reverse)
    assert fast.shape == (batch, L, m.d_inner) and fast.dtype == torch.float32
    err = ((fast.double() - ref).abs().max() / ref.abs().max()).item()
    assert err < 2e-6, err
    # negative control: the other direction is a different function of the same input
    if L > 1:
        other = _reference(m, xz, not reverse)
        assert ((fast.double() - other).abs().max() / ref.abs().max()).item() > 1e-2


def test_equals_general_float32_path_and_threads(perturbed_mamba, count_calls):
    m = perturbed_mamba(48, 16, 4, True, seed=7).requires_grad_(False)
    xz = torch.randn(4, 512, 2 * m.d_inner)
    with torch.no_grad():
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            serial = m.ssm(xz, reverse=True)
            torch.set_num_threads(2)
            parallel = m.ssm(xz, reverse=True)
        finally:
            torch.set_num_threads(threads)
        with scan_backend("torch"):  # any explicit non-numba backend keeps the general path
            spy = count_calls(_scan_numba, "mixer_inference")
            general = m.ssm(xz, reverse=True)
            assert spy.calls == 0
    scale = general.abs().max()
    assert ((serial - general).abs().max() / scale).item() < 2e-6
    assert ((parallel - general).abs().max() / scale).item() < 2e-6


def test_autograd_calls_keep_the_training_path(count_calls):
    m = Mamba(16)
    xz = torch.randn(2, 20, 2 * m.d_inner)
    spy = count_calls(_scan_numba, "mixer_inference")
    y = m.ssm(xz)  # parameters require grad, grad mode on
    assert spy.calls == 0 and y.grad_fn is not None
    with torch.no_grad():
        y2 = m.ssm(xz)
    assert spy.calls == 1 and y2.grad_fn is None
    assert torch.allclose(y, y2, rtol=1e-5, atol=1e-6)
    assert not mixer.mixer_inference_applies(xz.double(), m.A_log)  # float64: general path


def test_caduceus_ps_inference_equals_training_path_and_stays_rc_equivariant():
    torch.manual_seed(0)
    model = Caduceus(CaduceusConfig(d_model=48, n_layer=2, rcps=True, fused_add_norm=True))
    ids = torch.randint(0, 5, (3, 300))
    train_path = model(ids)  # grad mode on: the general path
    with torch.no_grad():
        fast = model(ids)
        rc = model(model.rc_input(ids))
    assert ((fast - train_path).abs().max() / train_path.abs().max()).item() < 2e-5
    from genodiff.models.rcps import rc_logits
    assert torch.allclose(rc_logits(rc, model.complement_map), fast, atol=1e-5)


def test_softplus_silu_accuracy():
    from genodiff.ops._numba_kernels import vsoftplus_silu

    x = np.concatenate([np.linspace(-120, 120, 240001), [0.0, -0.0, 19.999, 20.0, 20.001]]).astype(np.float32)
    sp, si = np.empty_like(x), np.empty_like(x)
    vsoftplus_silu(x, sp, si)
    x64 = torch.from_numpy(x).double()
    sp_ref = torch.nn.functional.softplus(x64).numpy()
    si_ref = torch.nn.functional.silu(x64).numpy()
    keep = x >= -87.0  # below, fexp flushes exp(x) < 1.7e-38 to 0
    assert np.max(np.abs(sp[keep] - sp_ref[keep]) / sp_ref[keep]) < 5e-7
    assert np.all(sp[~keep] == 0.0)
    big = np.abs(si_ref) > 1e-30
    assert np.max(np.abs(si[big] - si_ref[big]) / np.abs(si_ref[big])) < 5e-7


def test_exp2_nonpos_accuracy():
    """The inference scan's decay 2**x (x = dt A log2 e <= 0) against float64, under the kernels' fast-math flags."""
    from genodiff.ops._numba_kernels import vexp2_nonpos

    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-130, 0, 400001), -rng.exponential(1.0, 100000), [0.0, -0.0, -125.0, -np.inf]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    vexp2_nonpos(x, out)
    ref = np.exp2(x.astype(np.float64))
    kept = x >= -125.0
    rel = np.abs(out[kept] - ref[kept]) / ref[kept]
    assert rel.max() < 3e-7, rel.max()  # ~2e-7: the degree-5 fit (9e-8) plus float32 evaluation
    assert np.all(out[~kept] == 0.0)
    # power: the same bound rejects the kernel's output read as exp(x) (the log2(e) factor forgotten)
    wrong = np.exp(x[kept].astype(np.float64))
    assert (np.abs(out[kept] - wrong) / wrong).max() > 1e-2


def test_kernels_use_the_numpy_error_model():
    """A division under numba's default ("python") error model tests for zero and branches, which keeps LLVM
    from vectorising the loop: the serial kernels ran their SiLU/softplus loops scalar, 3-6x slower."""
    from genodiff.ops import _numba_kernels as nk

    kernels = [nk.scan_fwd, nk.scan_bwd, nk.scan_fwd_serial, nk.scan_bwd_serial, nk.conv_silu_tm,
               nk.conv_silu_tm_serial, nk.scan_tm_fwd, nk.scan_tm_fwd_serial, nk.scan_tm_bwd, nk.scan_tm_bwd_serial,
               nk.conv_tm_bwd, nk.conv_tm_bwd_serial, nk.conv_cm_fwd, nk.conv_cm_bwd, nk.vsoftplus_silu]
    assert all(k.targetoptions.get("error_model") == "numpy" for k in kernels)
