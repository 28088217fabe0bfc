"""The Triton selective scan under Triton's interpreter (CPU tensors): output, last state and every input
gradient against the float64 reference; a whole Caduceus-PS forward+backward against the numba path.

``TRITON_INTERPRET=1`` has to be set when the kernels are first imported (``@triton.jit`` reads it when it
decorates them) and while they run on CPU tensors: a module-scoped fixture sets it for this file only and
imports the kernels. Skipped without triton. Shapes stay small: the interpreter runs the programs of a grid
one after the other in Python (~0.1-0.2 ms per tile operation), so the cost grows with batch x dim x chunks.
The file takes 25-45 s on the 2-core development machine.
"""

from __future__ import annotations

import zlib

import pytest
import torch

pytest.importorskip("triton")

from genodiff.models.registry import build_model  # noqa: E402
from genodiff.ops import _scan_triton, scan_backend, selective_scan, selective_scan_ref  # noqa: E402
from genodiff.ops.selective_scan import _choose_backend  # noqa: E402
from test_selective_scan import ARG_NAMES, grads_of, make_inputs, rel_err, run  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _interpreter():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        kernels = _scan_triton._kernels()
        if type(kernels.scan_fwd_kernel).__name__ != "InterpretedFunction":  # pragma: no cover - GPU session
            pytest.skip("the Triton kernels were compiled for a GPU before this file ran")
        yield


#: worst relative error seen per (dtype, quantity), reported by test_zz_report (for perf/README.md)
MAX_ERR: dict = {}


def triton_scan(*args, chunk=None, **kwargs):
    """selective_scan with backend='triton' and, when given, a forced chunk length."""
    old = _scan_triton.CONFIG["chunk"]
    _scan_triton.CONFIG["chunk"] = chunk
    try:
        return selective_scan(*args, backend="triton", **kwargs)
    finally:
        _scan_triton.CONFIG["chunk"] = old


def compare(inp, softplus, last, chunk=None, tol=1e-5, tag="float32"):
    b, d, L = inp["u"].shape
    N = inp["A"].shape[1]
    gw = torch.Generator().manual_seed(1)
    weights = (torch.randn(b, d, L, generator=gw, dtype=torch.float64),
               torch.randn(b, d, N, generator=gw, dtype=torch.float64))
    inp64 = {k: (v.double() if v is not None else None) for k, v in inp.items()}
    out_r, st_r, g_r = grads_of(selective_scan_ref, inp64, softplus, last, weights)
    out, st, g = grads_of(lambda *a, **k: triton_scan(*a, chunk=chunk, **k), inp, softplus, last, weights)
    assert out.dtype == inp["u"].dtype and out.shape == (b, d, L)
    errs = {"out": rel_err(out, out_r)}
    if last:
        assert st.shape == (b, d, N) and st.dtype == torch.float32
        errs["last_state"] = rel_err(st, st_r)
    for k, gr in g_r.items():
        assert g[k] is not None and g[k].shape == inp[k].shape and g[k].dtype == inp[k].dtype, k
        errs["d" + k] = rel_err(g[k], gr) if gr.abs().max() > 0 else g[k].abs().max().item()
    for k, e in errs.items():
        MAX_ERR[(tag, k)] = max(MAX_ERR.get((tag, k), 0.0), e)
    bad = {k: e for k, e in errs.items() if not e < tol}
    assert not bad, bad


SHAPES = [  # batch, dim, L, dstate, groups, chunk (None: the default chunk)
    (2, 3, 1, 16, None, None),    # L = 1
    (2, 3, 7, 1, None, None),     # L = 7, dstate 1
    (1, 4, 64, 16, 2, None),      # L = 64, B/C shared by groups of 2 channels
    (2, 2, 200, 8, None, None),   # L = 200 in two chunks of the default 128 (dstate 8)
    (1, 3, 200, 3, 3, 32),        # L = 200 over 7 chunks, one group per channel, dstate 3 (padded to 4)
    (1, 2, 300, 16, None, 16),    # L = 300 over 19 chunks (18 boundaries)
]
OPTIONS = [  # D, z, delta_bias, softplus, last_state
    (True, True, True, True, True),
    (False, False, False, False, False),
    (True, False, True, True, False),
    (False, True, False, False, True),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(str(v) for v in s))
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "".join("DZbsl"[i] if v else "-" for i, v in enumerate(o)))
def test_forward_and_grads_match_reference(shape, opts):
    b, d, L, N, G, chunk = shape
    useD, usez, usebias, softplus, last = opts
    inp = make_inputs(b, d, L, N, G, D=useD, z=usez, delta_bias=usebias, softplus=softplus,
                      seed=zlib.crc32(repr((shape, opts)).encode()) % 1000)
    compare(inp, softplus, last, chunk)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_float32_state(dtype):
    """Half inputs: the state runs in float32; out and the input gradients come back in the input dtype.
    Compared with the reference on the same (rounded) inputs, so the error is the output rounding."""
    inp = make_inputs(2, 3, 100, 16, seed=7)
    lp = {k: (v.to(dtype) if v is not None else None) for k, v in inp.items()}
    compare(lp, True, True, chunk=32, tol=1e-2, tag=str(dtype).replace("torch.", ""))
    out, st = run(lambda *a, **k: triton_scan(*a, **k), lp, True, True)
    assert out.dtype == dtype and st.dtype == torch.float32


def test_mixed_input_dtypes():
    """bf16 activations with float32 A, D, delta_bias (what a bf16-mixed model passes)."""
    inp = make_inputs(1, 4, 50, 8, seed=8)
    for k in ("u", "delta", "B", "C", "z"):
        inp[k] = inp[k].to(torch.bfloat16)
    compare(inp, True, True, tol=1e-2, tag="bfloat16")


def test_gradcheck_float64():
    """float64 inputs run the kernels in float64: torch.autograd.gradcheck on out and last_state."""
    inp = make_inputs(1, 2, 20, 2, dtype=torch.float64, seed=3)  # two chunks of 16
    tensors = [inp[k].detach().clone().requires_grad_() for k in ARG_NAMES]

    def f(*ts):
        return triton_scan(*ts, delta_softplus=True, return_last_state=True, chunk=16)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
    out, st = run(lambda *a, **k: triton_scan(*a, **k), inp, True, True)
    ref, st_r = run(selective_scan_ref, inp, True, True)
    assert out.dtype == st.dtype == torch.float64
    assert rel_err(out, ref) < 1e-12 and rel_err(st, st_r) < 1e-12


def test_different_group_counts_for_b_and_c():
    inp = make_inputs(2, 6, 21, 3, groups=2, seed=12)
    inp["C"] = make_inputs(2, 6, 21, 3, groups=3, seed=9)["C"]
    compare(inp, True, True)


def test_extreme_decays():
    """delta * A far below the float32 range (decay 0), delta = 0 (no decay), a large softplus argument."""
    inp = make_inputs(1, 4, 30, 4, D=False, z=False, delta_bias=False, softplus=False, seed=13)
    inp["A"] = torch.tensor([[-1e4, -50.0, -1.0, -1e-6]] * 4)
    inp["delta"][:, :, ::3] = 0.0
    inp["delta"][:, :, 1::3] = 5.0
    compare(inp, False, True)
    inp = make_inputs(1, 2, 20, 4, seed=14)
    inp["delta"][:, :, ::4] = 30.0  # softplus threshold: above 20 softplus(x) = x, derivative 1
    inp["delta"][:, :, 1::4] = -30.0  # softplus(-30) ~ 1e-13: log1p accuracy
    compare(inp, True, True)


def test_noncontiguous_partial_grads_and_no_grad():
    inp = make_inputs(2, 3, 33, 4, seed=15)
    nc = {k: (v.transpose(1, 2).contiguous().transpose(1, 2) if v is not None and v.dim() == 3 else v)
          for k, v in inp.items()}
    assert not nc["u"].is_contiguous()
    ref = run(selective_scan_ref, inp, True, False)
    assert rel_err(run(triton_scan, nc, True, False), ref) < 1e-5
    for only in ("A", "C", "delta_bias"):  # gradient w.r.t. one input only
        leaves = dict(nc)
        leaves[only] = nc[only].detach().clone().requires_grad_()
        (gx,) = torch.autograd.grad(run(triton_scan, leaves, True, False).sum(), [leaves[only]])
        leaves64 = {k: (v.detach().double() if v is not None else None) for k, v in inp.items()}
        leaves64[only].requires_grad_()
        (gr,) = torch.autograd.grad(run(selective_scan_ref, leaves64, True, False).sum(), [leaves64[only]])
        assert rel_err(gx, gr) < 1e-5, only
    with torch.no_grad():  # inference: no chunk states are kept, same numbers
        leaves = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in inp.items()}
        out = run(triton_scan, leaves, True, False)
    assert not out.requires_grad and rel_err(out, ref) < 1e-5


def test_interpreter_shortcut_is_the_interpreters_own_scan(monkeypatch):
    """The log-depth scan/reduce used under the interpreter equals Triton's element-by-element one."""
    inp = make_inputs(1, 2, 40, 2, seed=16)
    w = (torch.randn(1, 2, 40, dtype=torch.float64), torch.randn(1, 2, 2, dtype=torch.float64))
    fast = grads_of(lambda *a, **k: triton_scan(*a, chunk=16, **k), inp, True, True, w)
    from triton.runtime import interpreter as interp

    monkeypatch.setattr(interp.ScanOps, "generic_scan", interp.ScanOps.generic_scan.__wrapped__)
    monkeypatch.setattr(interp.ReduceOps, "generic_reduce", interp.ReduceOps.generic_reduce.__wrapped__)
    slow = grads_of(lambda *a, **k: triton_scan(*a, chunk=16, **k), inp, True, True, w)
    assert rel_err(fast[0], slow[0]) < 1e-6 and rel_err(fast[1], slow[1]) < 1e-6
    for k in fast[2]:
        assert rel_err(fast[2][k], slow[2][k]) < 1e-6, k


def test_dispatch_on_cpu():
    """auto never picks triton for CPU tensors (even under the interpreter); triton refuses constant B/C
    and, without the interpreter, CPU tensors -- with one line saying why."""
    inp = make_inputs(1, 2, 5, 2)
    assert _choose_backend(inp["u"], "var", "var") != "triton"
    with pytest.raises(ValueError, match="variable"):
        triton_scan(inp["u"], inp["delta"], inp["A"], torch.randn(2, 2), inp["C"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="needs CUDA tensors.*TRITON_INTERPRET=1") as info:
            triton_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"])
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="power of two"):
        triton_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], chunk=24)


def test_caduceus_ps_forward_backward_triton_equals_numba():
    """A whole RC-equivariant Caduceus (2 layers, bidirectional Mamba, RCPS) run with
    ``scan_backend=triton`` gives the logits and every parameter gradient of the numba path."""
    torch.manual_seed(0)
    model = build_model("caduceus", d_model=4, n_layer=2, rcps=True, ssm_cfg={"d_state": 4})
    ids = torch.randint(7, 11, (1, 24))

    def step(backend):
        model.zero_grad()
        with scan_backend(backend):
            logits = model(ids)
        w = torch.linspace(-1, 1, logits.numel()).reshape(logits.shape)
        (logits * w).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    logits_n, grads_n = step("numba")
    logits_t, grads_t = step("triton")
    assert rel_err(logits_t, logits_n) < 1e-5
    assert grads_t.keys() == grads_n.keys() and len(grads_n) > 10
    for name, g in grads_n.items():
        assert rel_err(grads_t[name], g) < 1e-4, name


def test_zz_report():
    """Prints the worst relative errors of this run (``pytest -s`` shows them; perf/README.md quotes them)."""
    if MAX_ERR:
        print("\nworst relative error vs the float64 reference:")
        for (tag, k), e in sorted(MAX_ERR.items()):
            print(f"  {tag:<9} {k:<12} {e:.2e}")
