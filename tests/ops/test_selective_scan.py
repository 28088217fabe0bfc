"""Selective scan: every implementation against the float64 sequential reference (the oracle)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from genodiff.errors import InputError
from genodiff.ops import (
    available_kernels, configure_from, get_scan_backend, scan_backend, scan_backends_info, selective_scan,
    selective_scan_ref, set_scan_backend,
)
from genodiff.ops import _scan_numba, _scan_torch, _scan_triton
from genodiff.ops.selective_scan import ENV_VAR, _auto, _choose_backend

HAS_NUMBA = _scan_numba.available()
# "numba_parallel": the numba backend with the small-problem serial shortcut off, so the parallel
# kernels (prange, >= 2 threads) run even on the small test shapes
CPU_BACKENDS = ["torch"] + (["numba", "numba_parallel"] if HAS_NUMBA else [])


@pytest.fixture(autouse=True)
def _numba_parallel_variant(request, monkeypatch):
    """Tests parametrized with backend='numba_parallel' run backend='numba' with the parallel kernels."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "numba_parallel":
        monkeypatch.setattr(_scan_numba, "_SERIAL_BELOW", 0)
        n0 = torch.get_num_threads()
        torch.set_num_threads(max(2, n0))
        yield
        torch.set_num_threads(n0)
    else:
        yield


@pytest.fixture(autouse=True)
def _restore_scan_setting(monkeypatch):
    """Every test leaves the process-wide scan backend (and its environment variable) as it found them."""
    mod = sys.modules["genodiff.ops.selective_scan"]
    monkeypatch.setitem(mod._setting, "backend", mod._setting["backend"])
    if ENV_VAR in os.environ:
        monkeypatch.setenv(ENV_VAR, os.environ[ENV_VAR])
    else:
        monkeypatch.delenv(ENV_VAR, raising=False)


def real(backend):
    return "numba" if backend == "numba_parallel" else backend
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, L, N, groups=None, *, D=True, z=True, delta_bias=True, const_bc=False,
                dtype=torch.float32, seed=0, softplus=True):
    """Random inputs in the Mamba regime: A = -exp(.), B/C ~ N(0, 1); delta is raw (pre-softplus)
    when ``softplus`` else already positive (as the recurrence expects without softplus)."""
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    u = rn(batch, dim, L)
    delta = rn(batch, dim, L, scale=0.5) - 1.0
    if not softplus:
        delta = torch.nn.functional.softplus(delta.double()).to(dtype)
    A = (-torch.exp(torch.randn(dim, N, generator=g, dtype=torch.float64) * 0.5)).to(dtype)
    if const_bc:
        B, C = rn(dim, N), rn(dim, N)
    elif groups is None:
        B, C = rn(batch, N, L), rn(batch, N, L)
    else:
        B, C = rn(batch, groups, N, L), rn(batch, groups, N, L)
    return {
        "u": u, "delta": delta, "A": A, "B": B, "C": C,
        "D": rn(dim) if D else None,
        "z": rn(batch, dim, L) if z else None,
        "delta_bias": (rn(dim, scale=0.3) if softplus else rn(dim, scale=0.1).abs()) if delta_bias else None,
    }


def run(fn, inp, softplus, last, **kw):
    args = [inp[k] for k in ARG_NAMES]
    return fn(*args, delta_softplus=softplus, return_last_state=last, **kw)


def grads_of(fn, inp, softplus, last, weights, **kw):
    """Forward + gradients of a fixed random functional of (out, last_state) w.r.t. every tensor."""
    leaves = {k: (v.detach().clone().requires_grad_() if v is not None else None) for k, v in inp.items()}
    res = run(fn, leaves, softplus, last, **kw)
    out, st = (res if last else (res, None))
    loss = (out.to(torch.float64) * weights[0]).sum()
    if st is not None:
        loss = loss + (st.to(torch.float64) * weights[1]).sum()
    names = [k for k in ARG_NAMES if leaves[k] is not None]
    gs = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return out, st, dict(zip(names, gs))


def rel_err(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    scale = b.abs().max().clamp_min(1e-30)
    return ((a - b).abs().max() / scale).item()


SHAPES = [  # batch, dim, L, N, groups
    (2, 4, 1, 16, None),     # L = 1
    (2, 6, 37, 16, None),    # L not a power of two, dstate 16
    (1, 5, 64, 1, None),     # dstate 1
    (2, 8, 50, 4, 2),        # grouped B/C (batch, groups, dstate, L)
    (3, 3, 129, 8, None),
]
OPTIONS = [  # D, z, delta_bias, softplus, last_state
    (True, True, True, True, True),
    (False, False, False, False, False),
    (True, False, True, True, False),
    (False, True, False, False, True),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(str(v) for v in s))
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "".join("DZbsl"[i] if v else "-" for i, v in enumerate(o)))
def test_forward_and_grads_match_reference(backend, shape, opts):
    b, d, L, N, G = shape
    useD, usez, usebias, softplus, last = opts
    inp = make_inputs(b, d, L, N, G, D=useD, z=usez, delta_bias=usebias, softplus=softplus,
                      seed=zlib.crc32(repr((shape, opts)).encode()) % 1000)
    gw = torch.Generator().manual_seed(1)
    weights = (torch.randn(b, d, L, generator=gw, dtype=torch.float64),
               torch.randn(b, d, N, generator=gw, dtype=torch.float64))
    inp64 = {k: (v.double() if v is not None else None) for k, v in inp.items()}
    out_r, st_r, g_r = grads_of(selective_scan_ref, inp64, softplus, last, weights)
    out, st, g = grads_of(selective_scan, inp, softplus, last, weights, backend=real(backend))
    assert out.dtype == torch.float32 and out.shape == (b, d, L)
    assert rel_err(out, out_r) < 1e-5
    if last:
        assert st.shape == (b, d, N) and st.dtype == torch.float32
        assert rel_err(st, st_r) < 1e-5
    for k, gr in g_r.items():
        if gr is None or gr.abs().max() == 0:
            assert g[k] is None or g[k].abs().max() < 1e-6, k
            continue
        assert g[k].shape == inp[k].shape, k
        assert rel_err(g[k], gr) < 1e-5, (k, rel_err(g[k], gr))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", [(1, 2, 1, 1, None), (2, 3, 7, 3, None), (1, 4, 5, 2, 2)])
def test_gradcheck_float64(backend, shape):
    b, d, L, N, G = shape
    inp = make_inputs(b, d, L, N, G, dtype=torch.float64, seed=3)
    names = list(ARG_NAMES)
    tensors = [inp[k].detach().clone().requires_grad_() for k in names]

    def f(*ts):
        out, st = selective_scan(*ts, delta_softplus=True, return_last_state=True, backend=real(backend))
        return out, st

    # full Jacobian on the smallest shape; random-projection (fast_mode) checks on the others
    fast = tensors[0].numel() > 2
    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=fast)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_constant_bc_and_mixed(backend):
    """Constant (dim, dstate) B and/or C: handled by the blocked path (auto dispatch)."""
    b, d, L, N = 2, 4, 23, 3
    for cb, cc in [(True, True), (True, False), (False, True)]:
        inp = make_inputs(b, d, L, N)
        const = make_inputs(b, d, L, N, const_bc=True, seed=5)
        if cb:
            inp["B"] = const["B"]
        if cc:
            inp["C"] = const["C"]
        weights = (torch.randn(b, d, L, dtype=torch.float64), torch.randn(b, d, N, dtype=torch.float64))
        inp64 = {k: (v.double() if v is not None else None) for k, v in inp.items()}
        out_r, st_r, g_r = grads_of(selective_scan_ref, inp64, True, True, weights)
        out, st, g = grads_of(selective_scan, inp, True, True, weights)  # auto
        assert rel_err(out, out_r) < 1e-5 and rel_err(st, st_r) < 1e-5
        for k, gr in g_r.items():
            assert rel_err(g[k], gr) < 1e-5, k
        if backend != "torch":
            with pytest.raises(ValueError, match="variable"):
                run(selective_scan, inp, True, False, backend="numba")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_noncontiguous_and_partial_requires_grad(backend):
    b, d, L, N = 2, 6, 33, 4
    inp = make_inputs(b, d, L, N)
    # non-contiguous views with the same values
    nc = {}
    for k, v in inp.items():
        if v is None:
            nc[k] = None
        elif v.dim() == 3:
            nc[k] = v.transpose(1, 2).contiguous().transpose(1, 2)
        elif v.dim() == 2:
            nc[k] = v.t().contiguous().t()
        else:
            nc[k] = torch.stack([v, v], -1)[..., 0]
        if v is not None:
            assert torch.equal(nc[k], v)
    assert not nc["u"].is_contiguous()
    ref = run(selective_scan_ref, inp, True, False)
    out = run(selective_scan, nc, True, False, backend=real(backend))
    assert rel_err(out, ref) < 1e-5
    # gradient w.r.t. a subset only
    for only in ("u", "A", "C", "delta_bias"):
        leaves = dict(nc)
        leaves[only] = nc[only].detach().clone().requires_grad_()
        out = run(selective_scan, leaves, True, False, backend=real(backend))
        (gx,) = torch.autograd.grad(out.sum(), [leaves[only]])
        leaves64 = {k: (v.detach().double() if v is not None else None) for k, v in inp.items()}
        leaves64[only].requires_grad_()
        (gr,) = torch.autograd.grad(run(selective_scan_ref, leaves64, True, False).sum(), [leaves64[only]])
        assert rel_err(gx, gr) < 1e-5, only
    # no grad at all
    with torch.no_grad():
        out = run(selective_scan, inp, True, False, backend=real(backend))
    assert not out.requires_grad


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_low_precision_inputs(backend):
    inp = make_inputs(2, 4, 19, 8)
    lp = {k: (v.to(torch.bfloat16) if v is not None else None) for k, v in inp.items()}
    out, st = run(selective_scan, lp, True, True, backend=real(backend))
    assert out.dtype == torch.bfloat16 and st.dtype == torch.float32
    ref, st_r = run(selective_scan_ref, {k: (v.double() if v is not None else None) for k, v in lp.items()},
                    True, True)
    assert rel_err(out, ref) < 1e-2 and rel_err(st, st_r) < 1e-5


def test_float64_is_exact_enough():
    inp = make_inputs(2, 5, 40, 16, dtype=torch.float64)
    ref, st_r = run(selective_scan_ref, inp, True, True)
    for backend in CPU_BACKENDS:
        out, st = run(selective_scan, inp, True, True, backend=real(backend))
        assert out.dtype == torch.float64 and st.dtype == torch.float64
        assert rel_err(out, ref) < 1e-12 and rel_err(st, st_r) < 1e-12


def test_extreme_decays():
    """Very negative delta*A (decay underflows to 0) and delta = 0 (no decay) stay finite and exact."""
    inp = make_inputs(1, 4, 30, 4, D=False, z=False, delta_bias=False, softplus=False)
    inp["A"] = torch.tensor([[-1e4, -50.0, -1.0, -1e-6]] * 4)
    inp["delta"][:, :, ::3] = 0.0
    inp["delta"][:, :, 1::3] = 5.0
    ref, st_r = run(selective_scan_ref, {k: (v.double() if v is not None else None) for k, v in inp.items()},
                    False, True)
    for backend in CPU_BACKENDS:
        out, st = run(selective_scan, inp, False, True, backend=real(backend))
        assert torch.isfinite(out).all()
        assert rel_err(out, ref) < 1e-5 and rel_err(st, st_r) < 1e-5


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("fastmath,bound", [(False, 2e-7), (True, 4e-7)])
def test_fast_expf_accuracy(fastmath, bound):
    from genodiff.ops._numba_kernels import vexp, vexp_fastmath

    x = np.concatenate([np.linspace(-100, 95, 400001), [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    out = np.empty_like(x)
    (vexp_fastmath if fastmath else vexp)(x, out)  # fexp is inlined: under the kernels' flags it may reassociate
    ref = np.exp(x.astype(np.float64))
    normal = (x > -87) & (x < 88)
    assert np.max(np.abs(out[normal] - ref[normal]) / ref[normal]) < bound
    assert np.all(out[x < -87.0] == 0.0)
    assert np.all(np.isinf(out[x > 88.8]))
    assert np.isnan(out[-1])


def test_auto_dispatch_and_available_kernels():
    ak = available_kernels()
    assert set(ak) >= {"mamba_ssm_cuda", "causal_conv1d_cuda", "cpu_fast_scan", "reference"}
    assert ak["reference"] is True
    inp = make_inputs(1, 2, 3, 2)
    expected = "numba" if HAS_NUMBA else "torch"
    assert _choose_backend(inp["u"], "var", "var") == expected
    assert _choose_backend(inp["u"], "const", "var") == "torch"
    assert ak["cpu_fast_scan"] == ("numba" if HAS_NUMBA else False)


def test_no_cuda_package_imported_at_module_top():
    code = (
        "import sys, torch, genodiff.ops as o\n"
        "from genodiff.ops.selective_scan import selective_scan\n"
        "o.available_kernels()\n"
        "x = torch.randn(1, 2, 5)\n"
        "selective_scan(x, x, -torch.ones(2, 3), torch.randn(1, 3, 5), torch.randn(1, 3, 5))\n"
        "o.causal_conv1d(x, torch.randn(2, 4))\n"
        "o.scan_backends_info(); o.set_scan_backend('triton'); o.set_scan_backend('auto')\n"
        "from genodiff.tasks.info import collect_info; collect_info()\n"
        "from genodiff.models.registry import build_model\n"
        "build_model('caduceus', d_model=4, n_layer=1, rcps=True)(torch.randint(7, 11, (1, 9))).sum().backward()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mamba_ssm', 'causal_conv1d', 'triton')]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", ENV_VAR)}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_disable_numba_env_falls_back(monkeypatch):
    monkeypatch.setitem(_scan_numba._state, "checked", True)
    monkeypatch.setitem(_scan_numba._state, "ok", False)
    inp = make_inputs(1, 2, 9, 2)
    assert _choose_backend(inp["u"], "var", "var") == "torch"
    ref = run(selective_scan_ref, inp, True, False)
    assert rel_err(run(selective_scan, inp, True, False), ref) < 1e-5
    with pytest.raises(RuntimeError, match="numba"):
        run(selective_scan, inp, True, False, backend="numba")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda i: i.update(u=i["u"][0]), "u must be"),
        (lambda i: i.update(delta=i["delta"][:, :, :-1]), "delta must"),
        (lambda i: i.update(A=i["A"][:, None]), "A must be"),
        (lambda i: i.update(B=i["B"][:, :, :-1]), "B must be"),
        (lambda i: i.update(C=torch.randn(2, 3, 2, 9)), "groups=3 must divide"),
        (lambda i: i.update(D=torch.randn(3)), "D must be"),
        (lambda i: i.update(z=torch.randn(2, 4, 8)), "z must"),
        (lambda i: i.update(A=i["A"].to(torch.complex64)), "complex"),
    ],
)
def test_bad_shapes_raise(mutate, match):
    inp = make_inputs(2, 4, 9, 2)
    mutate(inp)
    with pytest.raises(ValueError, match=match):
        run(selective_scan, inp, True, False)


def test_unknown_backend():
    inp = make_inputs(1, 2, 3, 2)
    with pytest.raises(ValueError, match="unknown scan backend 'gpu' \\(choose from auto, mamba_ssm, triton"):
        run(selective_scan, inp, True, False, backend="gpu")
    for name in ("cuda", "mamba_ssm"):  # "cuda": the old name of mamba_ssm
        with pytest.raises(RuntimeError, match="mamba_ssm"):
            run(selective_scan, inp, True, False, backend=name)
    assert rel_err(run(selective_scan, inp, True, False, backend="blocked"),  # the old name of torch
                   run(selective_scan_ref, inp, True, False)) < 1e-5


def test_triton_backend_without_triton(monkeypatch):
    monkeypatch.setattr(_scan_triton, "available", lambda: False)
    inp = make_inputs(1, 2, 3, 2)
    with pytest.raises(RuntimeError, match="needs the triton package"):
        run(selective_scan, inp, True, False, backend="triton")
    assert scan_backends_info()["usable"]["triton"] is False


def test_triton_backend_refuses_cpu_tensors_without_interpreter(monkeypatch):
    monkeypatch.setattr(_scan_triton, "available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    inp = make_inputs(1, 2, 3, 2)
    with pytest.raises(RuntimeError, match=r"needs CUDA tensors \(got cpu\).*TRITON_INTERPRET=1") as info:
        run(selective_scan, inp, True, False, backend="triton")
    assert "\n" not in str(info.value)


def test_auto_by_device(monkeypatch):
    """CUDA: mamba-ssm when it imports, else Triton (variable B/C), else torch; CPU: numba, else torch --
    never Triton on a CPU, interpreter or not."""
    monkeypatch.setattr(_scan_triton, "available", lambda: True)
    f32, f64 = torch.float32, torch.float64
    assert _auto("cuda", f32, True, lambda: True) == "mamba_ssm"
    assert _auto("cuda", f32, True, lambda: False) == "triton"
    assert _auto("cuda", f64, True, lambda: True) == "triton"  # mamba-ssm has no float64 kernel
    assert _auto("cuda", f32, False, lambda: False) == "torch"  # constant B/C
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _auto("cpu", f32, True, lambda: True) == ("numba" if HAS_NUMBA else "torch")
    assert _auto("mps", f32, True, lambda: True) == "torch"
    monkeypatch.setattr(_scan_triton, "available", lambda: False)
    assert _auto("cuda", f32, True, lambda: False) == "torch"
    info = scan_backends_info()
    assert info["auto_cpu"] == ("numba" if HAS_NUMBA else "torch") and info["auto_cuda"] in ("mamba_ssm", "torch")
    assert set(info["usable"]) == {"mamba_ssm", "triton", "numba", "torch", "reference"}


def test_process_wide_setting(monkeypatch):
    """A call without backend= follows the setting; set/context/configure_from validate the name."""
    monkeypatch.setenv(ENV_VAR, "auto")
    assert get_scan_backend() == "auto"
    inp = make_inputs(1, 2, 7, 2)

    def boom(*args, **kwargs):
        raise LookupError("torch path taken")

    monkeypatch.setattr(_scan_torch, "scan_blocked", boom)
    with scan_backend("torch") as name:
        assert name == "torch" and get_scan_backend() == "torch" and os.environ[ENV_VAR] == "torch"
        with pytest.raises(LookupError, match="torch path"):
            run(selective_scan, inp, True, False)
        run(selective_scan, inp, True, False, backend="reference")  # an explicit backend wins
    assert get_scan_backend() == "auto" and os.environ[ENV_VAR] == "auto"
    assert set_scan_backend("blocked") == "auto" and get_scan_backend() == "torch"  # old name accepted
    assert set_scan_backend("auto") == "torch"
    with pytest.raises(ValueError, match="unknown scan backend 'fast'"):
        set_scan_backend("fast")
    assert get_scan_backend() == "auto"
    assert configure_from(None) == "auto" and configure_from({}) == "auto"
    assert configure_from({"scan_backend": "Reference"}) == "reference"
    with pytest.raises(InputError, match=r"^ops.scan_backend: unknown scan backend 'gpu' \(choose from auto, "):
        configure_from({"scan_backend": "gpu"})
    assert configure_from({"scan_backend": None}) == "auto"


def test_setting_from_environment():
    """GENODIFF_SCAN_BACKEND sets the initial value (how spawned workers and DDP ranks inherit it)."""
    code = "from genodiff.ops import get_scan_backend; print(get_scan_backend())"
    for value, expected in (("torch", "torch"), ("blocked", "torch"), ("", "auto")):
        env = dict(os.environ, **{ENV_VAR: value})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                             check=True).stdout.strip()
        assert out == expected, (value, out)


def test_reference_matches_closed_form_for_single_state():
    """dim=1, dstate=1, constant delta: h_t = sum_s exp(dA)^(t-s) delta B_s u_s (independent oracle)."""
    L = 12
    u = torch.randn(1, 1, L, dtype=torch.float64)
    B = torch.randn(1, 1, L, dtype=torch.float64)
    C = torch.randn(1, 1, L, dtype=torch.float64)
    delta = torch.full((1, 1, L), 0.3, dtype=torch.float64)
    A = torch.tensor([[-0.7]], dtype=torch.float64)
    out = selective_scan_ref(u, delta, A, B, C)
    a = math.exp(0.3 * -0.7)
    expect = []
    for t in range(L):
        h = sum(a ** (t - s) * 0.3 * B[0, 0, s] * u[0, 0, s] for s in range(t + 1))
        expect.append(C[0, 0, t] * h)
    assert torch.allclose(out[0, 0], torch.stack(expect), rtol=1e-12, atol=1e-12)


def _fork_child(q):
    inp = make_inputs(2, 8, 40, 4, seed=11)
    leaves = [inp[k].requires_grad_() for k in ("u", "delta", "A", "B", "C")]
    out = selective_scan(*leaves, delta_softplus=True)
    out.sum().backward()
    q.put((out.detach().numpy().copy(), leaves[0].grad.numpy().copy()))  # plain pickles, no fd sharing


@pytest.mark.skipif(not HAS_NUMBA or sys.platform != "linux", reason="numba + fork (linux) only")
def test_forked_child_after_parent_used_thread_pool():
    """GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel kernel must still
    work (it switches to the serial kernels) instead of being terminated by numba."""
    import multiprocessing as mp

    n0 = torch.get_num_threads()
    with torch.no_grad():
        torch.set_num_threads(max(2, n0))
        run(selective_scan, make_inputs(8, 32, 40, 16), True, False)  # parent uses the pool
        torch.set_num_threads(n0)
    assert _scan_numba._state.get("pool_pid") is not None
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_fork_child, args=(q,))
    p.start()
    try:
        out, gu = q.get(timeout=120)
    finally:
        p.join(30)
    assert p.exitcode == 0
    out, gu = torch.from_numpy(out), torch.from_numpy(gu)
    inp = make_inputs(2, 8, 40, 4, seed=11)
    leaves = [inp[k].requires_grad_() for k in ("u", "delta", "A", "B", "C")]
    ref = selective_scan(*leaves, delta_softplus=True)
    ref.sum().backward()
    assert torch.allclose(out, ref.detach(), atol=1e-6) and torch.allclose(gu, leaves[0].grad, atol=1e-5)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_thread_count_does_not_change_results(monkeypatch):
    """Serial (1 thread) and parallel kernels, and the dB/dC block split, agree."""
    inp = make_inputs(1, 12, 70, 16, seed=4)
    w = (torch.randn(1, 12, 70, dtype=torch.float64), torch.randn(1, 12, 16, dtype=torch.float64))
    n0 = torch.get_num_threads()
    monkeypatch.setattr(_scan_numba, "_SERIAL_BELOW", 0)
    try:
        torch.set_num_threads(1)
        o1, s1, g1 = grads_of(selective_scan, inp, True, True, w, backend="numba")
        torch.set_num_threads(max(2, n0))
        o2, s2, g2 = grads_of(selective_scan, inp, True, True, w, backend="numba")
    finally:
        torch.set_num_threads(n0)
    assert torch.equal(o1, o2) and torch.equal(s1, s2)
    for k in g1:
        assert rel_err(g1[k], g2[k]) < 1e-6, k


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_different_group_counts_for_b_and_c(backend):
    b, d, L, N = 2, 6, 21, 3
    inp = make_inputs(b, d, L, N, groups=2)
    inp["C"] = make_inputs(b, d, L, N, groups=3, seed=9)["C"]
    w = (torch.randn(b, d, L, dtype=torch.float64), torch.randn(b, d, N, dtype=torch.float64))
    out_r, st_r, g_r = grads_of(selective_scan_ref, {k: v.double() for k, v in inp.items()}, True, True, w)
    out, st, g = grads_of(selective_scan, inp, True, True, w, backend=real(backend))
    assert rel_err(out, out_r) < 1e-5 and rel_err(st, st_r) < 1e-5
    for k, gr in g_r.items():
        assert g[k].shape == inp[k].shape and rel_err(g[k], gr) < 1e-5, k


def test_jobs_read_ops_scan_backend(tmp_path):
    """Every job that runs a model has ``ops.scan_backend`` (default auto); a bad value stops the job with
    one ``genodiff: error:`` line (exit status 2), and so does a backend that cannot run here: that error
    is an InputError (the CLI's one-line errors) as well as a RuntimeError."""
    from genodiff.config import compose_config

    for job in ("pretrain", "finetune", "sample", "score", "evaluate", "benchmark"):
        assert compose_config(job).ops.scan_backend == "auto", job
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", ENV_VAR)}
    result = subprocess.run(
        [sys.executable, "-m", "genodiff.cli", "pretrain", "experiment/pretrain=demo", "max_steps=1",
         "ops.scan_backend=gpu", f"output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        "genodiff: error: ops.scan_backend: unknown scan backend 'gpu' (choose from auto, mamba_ssm, triton, numba, "
        "torch, reference)"]
    inp = make_inputs(1, 2, 3, 2)
    with pytest.raises(InputError, match="backend='mamba_ssm' needs") as info:
        run(selective_scan, inp, True, False, backend="mamba_ssm")
    assert isinstance(info.value, RuntimeError)


def test_info_reports_scan_backends():
    from genodiff.tasks.info import collect_info, format_info

    info = collect_info()
    scan = info["scan_backends"]
    assert scan["setting"] == get_scan_backend() and scan["auto_cpu"] == ("numba" if HAS_NUMBA else "torch")
    assert scan["auto_cuda"] in ("mamba_ssm", "triton", "torch")
    text = format_info(info)
    assert f"auto on CPU    {scan['auto_cpu']}" in text and f"auto on CUDA   {scan['auto_cuda']}" in text
    assert "usable here    " in text and "triton" in info["packages"]
