"""The glue to the optional CUDA kernels (mamba-ssm, causal-conv1d), tested on the CPU.

No GPU is needed: stand-in packages with the upstream call signatures (mamba-ssm
``selective_scan_fn``; current causal-conv1d ``causal_conv1d_fn``, whose fourth positional parameter is
``seq_idx``) are written to a temporary folder and put on ``sys.path``. They check the arguments the way
the kernels do and compute with genodiff's float64 reference, so a wrong argument order or name fails
here instead of on the first GPU run. The numerics of the real kernels are checked by perf/gpu_run.sh.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from genodiff.ops.conv import causal_conv1d_ref
from genodiff.ops.selective_scan import selective_scan_ref
from test_selective_scan import make_inputs  # tests/ops is on sys.path (pytest's default import mode)

# the modules, not the functions of the same name that genodiff.ops re-exports
scan_mod = importlib.import_module("genodiff.ops.selective_scan")
conv_mod = importlib.import_module("genodiff.ops.conv")

FAKE_MAMBA = '''
import torch
CALLS = []

def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False):
    assert u.dim() == 3 and delta.shape == u.shape, "u, delta: (batch, dim, L)"
    assert A.shape[0] == u.shape[1], "A: (dim, dstate)"
    assert D is None or D.shape == (u.shape[1],), "D: (dim,)"
    assert delta_bias is None or delta_bias.shape == (u.shape[1],), "delta_bias: (dim,)"
    assert isinstance(delta_softplus, bool) and isinstance(return_last_state, bool)
    CALLS.append(dict(D=D is not None, z=z is not None, delta_bias=delta_bias is not None,
                      delta_softplus=delta_softplus, return_last_state=return_last_state))
    from genodiff.ops.selective_scan import selective_scan_ref
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
'''

FAKE_CONV = '''
CALLS = []

def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                     final_states_out=None, activation=None):
    assert seq_idx is None or not isinstance(seq_idx, str), "activation passed as seq_idx"
    assert activation in (None, "silu", "swish"), activation
    assert x.dim() == 3 and weight.shape == (x.shape[1], weight.shape[1]), "x (batch, dim, L), weight (dim, width)"
    CALLS.append(activation)
    from genodiff.ops.conv import causal_conv1d_ref
    return causal_conv1d_ref(x, weight, bias, activation)
'''


@pytest.fixture
def fake_kernels(tmp_path, monkeypatch):
    """Install stand-in ``mamba_ssm`` and ``causal_conv1d`` packages; reset the cached kernel lookups."""
    (tmp_path / "mamba_ssm" / "ops").mkdir(parents=True)
    (tmp_path / "mamba_ssm" / "__init__.py").write_text("")
    (tmp_path / "mamba_ssm" / "ops" / "__init__.py").write_text("")
    (tmp_path / "mamba_ssm" / "ops" / "selective_scan_interface.py").write_text(FAKE_MAMBA)
    (tmp_path / "causal_conv1d").mkdir()
    (tmp_path / "causal_conv1d" / "__init__.py").write_text(FAKE_CONV)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(scan_mod, "_mamba_fn", None)
    monkeypatch.setattr(conv_mod, "_cuda_fn", None)
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] in ("mamba_ssm", "causal_conv1d")]:
        del sys.modules[name]


@pytest.mark.parametrize("shape", [(1, 2, 1, 3, None), (2, 4, 37, 4, None), (2, 4, 16, 2, 2)])
@pytest.mark.parametrize("last_state", [False, True])
def test_mamba_scan_glue_passes_every_argument(fake_kernels, shape, last_state):
    fn = scan_mod._load_mamba_fn()
    assert fn and fn.__module__ == "mamba_ssm.ops.selective_scan_interface"
    inp = make_inputs(*shape, seed=sum(shape[:4]))
    got = scan_mod._call_mamba_scan(fn, inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                                    inp["delta_bias"], True, last_state)
    want = selective_scan_ref(**inp, delta_softplus=True, return_last_state=last_state)
    got, want = (got, want) if last_state else ((got,), (want,))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    calls = sys.modules["mamba_ssm.ops.selective_scan_interface"].CALLS
    assert calls[-1] == dict(D=True, z=True, delta_bias=True, delta_softplus=True, return_last_state=last_state)


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("width", [2, 4])
def test_causal_conv1d_glue_passes_activation_by_keyword(fake_kernels, activation, width):
    fn = conv_mod._load_cuda_fn()
    assert fn and fn.__module__ == "causal_conv1d"
    g = torch.Generator().manual_seed(width)
    x, w, b = torch.randn(2, 3, 11, generator=g), torch.randn(3, width, generator=g), torch.randn(3, generator=g)
    got = conv_mod._call_causal_conv1d(fn, x, w, b, activation)
    torch.testing.assert_close(got, causal_conv1d_ref(x, w, b, activation), rtol=0, atol=0)
    assert sys.modules["causal_conv1d"].CALLS[-1] == activation


def test_positional_activation_would_be_caught(fake_kernels):
    """The stand-in really checks: the old positional call puts 'silu' into seq_idx and fails."""
    fn = conv_mod._load_cuda_fn()
    x, w = torch.randn(1, 2, 5), torch.randn(2, 3)
    with pytest.raises(AssertionError, match="seq_idx"):
        fn(x, w, None, "silu")


def test_installed_kernels_are_reported_but_unused_on_cpu(fake_kernels):
    """With the packages importable, CPU tensors still take the CPU paths and the packages stay unimported
    until a CUDA tensor asks for them; without a CUDA device ``available_kernels`` says the kernels are not
    usable, and it imports nothing either."""
    code = textwrap.dedent("""
        import sys, torch, genodiff.ops as o
        from genodiff.ops.conv import causal_conv1d_cuda_available
        from genodiff.ops.selective_scan import selective_scan, _choose_backend, mamba_ssm_available
        assert mamba_ssm_available() and causal_conv1d_cuda_available()
        ak = o.available_kernels()
        assert ak["mamba_ssm_cuda"] == ak["causal_conv1d_cuda"] == torch.cuda.is_available(), ak
        x = torch.randn(1, 2, 5)
        assert _choose_backend(x, "var", "var") != "mamba_ssm"
        selective_scan(x, x, -torch.ones(2, 3), torch.randn(1, 3, 5), torch.randn(1, 3, 5))
        o.causal_conv1d(x, torch.randn(2, 4), activation="silu")
        loaded = [m for m in sys.modules if m.split('.')[0] in ('mamba_ssm', 'causal_conv1d')]
        assert not loaded, loaded
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake_kernels)] + [p for p in sys.path if p]))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env)


def test_cuda_backend_refuses_cpu_tensors(fake_kernels):
    inp = make_inputs(1, 2, 4, 2)
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        scan_mod.selective_scan(**inp, backend="cuda")
