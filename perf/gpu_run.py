"""The GPU run's driver (started by perf/gpu_run.sh; see its header). Writes one JSON file, section by section.

    python perf/gpu_run.py [--out DIR] [--budget 400] [--sections a,b,c,d] [--steps 300] [--batch 256]
    python perf/gpu_run.py --cpu-smoke       # every section tiny, on the CPU (Triton under its interpreter)

Sections (each under a time budget and its own try/except, so one failure keeps the others' results):

a. correctness at real shapes, float32 and bfloat16: the Triton scan on the GPU against the float64 reference
   and against the CPU path (numba), every output and input gradient; mamba-ssm too when importable; a whole
   Caduceus-Ph forward+backward with scan_backend=triton against the torch path and against the CPU.
b. forward+backward time of the Triton scan vs the pure-torch path on the GPU (and mamba-ssm when built) at
   B=8, D=236, L=1,024, N=16 and at B=1, D=236, L=131,072; a sweep of chunk / warps; the depthwise causal conv
   (torch, and causal-conv1d when built) at the same shapes; a profiled Caduceus-Ph training step.
c. the real ``genodiff pretrain`` path (experiment/pretrain=chr2_slice on the carried .gpu_data copy of the
   chr2 slice) with the paper's Caduceus-Ph (d_model 118, 4 layers), MDLM, bf16-mixed, scan_backend=triton:
   tokens/s, step time, peak memory, data-wait share, final validation bits/base.
d. generation: ``genodiff sample`` of 100 x 1,024 bp with the first-hitting and cached samplers, sequences/s.

The JSON (``<out>/gpu_run.json``) also holds the machine (GPU, driver, torch / CUDA / triton versions), the
source (commit and a digest of genodiff/*.py; .gpu_data/SOURCE.json from the prepare step) and a ``goals``
summary: Triton >= 50x the torch path and <= 2x mamba-ssm at L = 1,024; >= 1,000,000 tokens/s with < 5 %
data wait.
"""

from __future__ import annotations

import os
import sys

SMOKE = "--cpu-smoke" in sys.argv
if SMOKE:  # Triton's interpreter must be on before the kernels are first imported
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silence triton >= 3.9's notice; the default anyway

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO / ".gpu_data"  # carried to the GPU machine; layout of $GENODIFF_SHARED
CHR2 = DATA_ROOT / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


# ------------------------------------------------------------------------------------------------ plumbing
class Run:
    """The results, written to ``path`` after every step; sections run under deadlines."""

    def __init__(self, path: Path, budget: float):
        self.path, self.t0, self.budget = path, time.time(), budget
        self.data: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "mode": "cpu-smoke" if SMOKE else "gpu",
                           "sections": {}, "errors": {}}
        self.deadline = self.t0 + budget

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.time() - self.t0, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)

    def left(self) -> float:
        return self.deadline - time.time()

    @contextlib.contextmanager
    def section(self, name: str, share: float):
        """Run a section with ``share`` of the time still left before the overall deadline."""
        started = time.time()
        self.deadline = started + max(0.0, (self.t0 + self.budget - started)) * share
        out = self.data["sections"].setdefault(name, {})
        out["status"] = "running"
        self.save()
        print(f"== {name} (budget {self.deadline - started:.0f} s)", flush=True)
        try:
            yield out
            out["status"] = "done"
        except Exception as exc:  # keep going: later sections still run
            out["status"] = "failed"
            self.data["errors"][name] = f"{type(exc).__name__}: {exc}"
            out["traceback"] = traceback.format_exc()[-4000:]
            print(out["traceback"], file=sys.stderr, flush=True)
        finally:
            out["seconds"] = round(time.time() - started, 1)
            self.deadline = self.t0 + self.budget
            self.save()

    def step(self, out: dict, key: str, fn, *args, need: float = 0.0, **kwargs):
        """``out[key] = fn(...)`` unless less than ``need`` seconds are left; errors are recorded, not raised."""
        if self.left() < need:
            out[key] = {"skipped": f"time budget ({self.left():.0f} s left, ~{need:.0f} s needed)"}
            self.save()
            return None
        t = time.time()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            out[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            print(f"   {key}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            value = None
        else:
            out[key] = value
            print(f"   {key}: {json.dumps(value, default=str)[:300]}", flush=True)
        if isinstance(out.get(key), dict):
            out[key].setdefault("seconds", round(time.time() - t, 1))
        self.save()
        return value


def dev() -> str:
    return "cpu" if SMOKE else "cuda"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) if b.numel() else 0.0


def inputs(b, d, L, n, groups=None, seed=0, dtype=torch.float32, full=True):
    """Mamba-regime inputs (A = -exp, B/C ~ N(0, 1), raw delta around softplus^-1 of small steps)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, k=1.0):
        return torch.randn(*shape, generator=g) * k

    bc = (b, n, L) if groups is None else (b, groups, n, L)
    x = {"u": r(b, d, L), "delta": r(b, d, L, k=0.5) - 1.0, "A": -torch.exp(r(d, n, k=0.5)), "B": r(*bc),
         "C": r(*bc), "D": r(d), "z": r(b, d, L), "delta_bias": r(d, k=0.3)}
    if not full:
        x["z"] = x["D"] = None
    return {k: (v.to(dtype) if v is not None and k in ("u", "delta", "B", "C", "z") else v) for k, v in x.items()}


def fwd_bwd(x: dict, backend: str, device: str, last_grad: bool = True, upcast64: bool = False):
    """out, last_state and the gradient of a fixed random functional w.r.t. every input (float64, CPU)."""
    from genodiff.ops import selective_scan

    leaves = {}
    for k, v in x.items():
        if v is None:
            leaves[k] = None
            continue
        v = v.double() if upcast64 else v
        leaves[k] = v.to(device).detach().requires_grad_()
    out, last = selective_scan(*[leaves[k] for k in NAMES], delta_softplus=True, return_last_state=True,
                               backend=backend)
    g = torch.Generator().manual_seed(1)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    w_last = torch.randn(last.shape, generator=g, dtype=torch.float64)
    loss = (out.double() * w_out.to(out.device)).sum()
    if last_grad:
        loss = loss + (last.double() * w_last.to(out.device)).sum()
    names = [k for k in NAMES if leaves[k] is not None]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    res = {"out": out.detach().double().cpu(), "last_state": last.detach().double().cpu()}
    res.update({"d" + k: gr.detach().double().cpu() for k, gr in zip(names, grads)})
    return res


def compare(a: dict, b: dict) -> dict:
    return {k: float(f"{rel(a[k], b[k]):.3e}") for k in a if k in b}


# ------------------------------------------------------------------------------------------------ sections
def environment(run: Run) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001
        info["triton"] = f"not importable: {exc}"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                    multiprocessors=p.multi_processor_count, memory_gib=round(p.total_memory / 2**30, 1))
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as exc:  # noqa: BLE001
        info["nvidia_smi"] = f"unavailable: {exc}"
    for pkg in ("mamba_ssm", "causal_conv1d", "numba", "lightning", "hydra", "omegaconf", "pyfaidx", "Bio"):
        try:
            mod = __import__(pkg)
            info[f"pkg_{pkg}"] = getattr(mod, "__version__", "importable")
        except Exception as exc:  # noqa: BLE001
            info[f"pkg_{pkg}"] = f"not importable: {type(exc).__name__}"
    import genodiff
    from genodiff.ops import available_kernels, scan_backends_info

    info["genodiff_file"] = genodiff.__file__
    info["kernels"] = available_kernels()
    info["scan_backends"] = scan_backends_info()
    h = hashlib.sha256()
    for p in sorted((REPO / "genodiff").rglob("*.py")):
        h.update(p.relative_to(REPO).as_posix().encode())
        h.update(p.read_bytes())
    info["genodiff_py_sha256"] = h.hexdigest()
    src = DATA_ROOT / "SOURCE.json"
    info["prepared_source"] = json.loads(src.read_text()) if src.is_file() else None
    if info["prepared_source"]:
        info["same_code_as_prepared"] = info["prepared_source"].get("genodiff_py_sha256") == info["genodiff_py_sha256"]
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        info["git_commit"] = None
    return info


def section_a(run: Run, out: dict) -> None:
    from genodiff.ops import get_scan_backend, mamba_ssm_available, scan_backend

    device = dev()
    mamba = (not SMOKE) and mamba_ssm_available()
    if SMOKE:
        fp32_shapes = [((1, 4, 64, 16, None), True, True), ((1, 3, 40, 4, 3), False, True)]
        bf16_shape, long_shapes = (1, 3, 50, 16, None), [(1, 2, 300, 16, None)]
    else:
        fp32_shapes = [((2, 236, 1024, 16, None), True, True), ((2, 64, 300, 16, 2), False, True),
                       ((1, 236, 2048, 16, None), True, True)]
        bf16_shape, long_shapes = (2, 236, 1024, 16, None), [(1, 236, 16384, 16, None), (1, 236, 131072, 16, None)]
    limit_fp32, limit_bf16 = 1e-4, 3e-2
    verdicts = []

    def check_fp32(shape, full, with_ref):
        x = inputs(*shape, seed=sum(shape[:4]), full=full)
        tri = fwd_bwd(x, "triton", device)
        cpu = fwd_bwd(x, "numba", "cpu")
        res = {"shape(b,d,L,N,G)": shape, "z_and_D": full, "triton_vs_cpu_numba": compare(tri, cpu)}
        if with_ref:
            ref = fwd_bwd(x, "reference", "cpu", upcast64=True)
            res["triton_vs_ref64"] = compare(tri, ref)
            res["cpu_numba_vs_ref64"] = compare(cpu, ref)
        if not SMOKE and shape[2] <= 2048:
            res["torch_gpu_vs_cpu_numba"] = compare(fwd_bwd(x, "torch", device), cpu)
        if mamba:  # mamba-ssm's backward ignores d last_state: compare with the loss on `out` only
            m = fwd_bwd(x, "mamba_ssm", device, last_grad=False)
            res["mamba_ssm_vs_triton(out-loss)"] = compare(m, fwd_bwd(x, "triton", device, last_grad=False))
        worst = max(max(res["triton_vs_cpu_numba"].values()), max(res.get("triton_vs_ref64", {0: 0}).values()))
        res["worst_triton"] = worst
        res["pass"] = worst < limit_fp32
        verdicts.append(res["pass"])
        return res

    def check_bf16(shape):
        x = inputs(*shape, seed=5, dtype=torch.bfloat16)
        tri = fwd_bwd(x, "triton", device)
        res = {"shape(b,d,L,N,G)": shape, "triton_vs_ref64(same bf16 inputs)":
               compare(tri, fwd_bwd(x, "reference", "cpu", upcast64=True)),
               "triton_vs_cpu_numba": compare(tri, fwd_bwd(x, "numba", "cpu"))}
        if not SMOKE:
            res["torch_gpu_vs_triton"] = compare(fwd_bwd(x, "torch", device), tri)
        worst = max(res["triton_vs_ref64(same bf16 inputs)"].values())
        res["worst_triton"] = worst
        res["pass"] = worst < limit_bf16
        verdicts.append(res["pass"])
        return res

    def model_check(dtype_name):
        from genodiff.models.registry import build_model

        torch.manual_seed(0)
        kw = dict(d_model=8, n_layer=2) if SMOKE else dict(d_model=118, n_layer=4)
        model = build_model("caduceus", **kw).to(device)
        ids = torch.randint(7, 11, (2, 64 if SMOKE else 1024), device=device)
        autocast = dtype_name == "bf16-autocast" and device == "cuda"

        def step(backend, dev_):
            model.to(dev_)
            model.zero_grad()
            with scan_backend(backend), torch.autocast("cuda", torch.bfloat16, enabled=autocast and dev_ == "cuda"):
                logits = model(ids.to(dev_)).float()
            w = torch.linspace(-1, 1, logits.numel(), device=dev_).reshape(logits.shape)
            (logits * w).sum().backward()
            return {"logits": logits.detach().double().cpu(),
                    **{n: p.grad.detach().double().cpu() for n, p in model.named_parameters() if p.grad is not None}}

        tri = step("triton", device)
        res = {"params_with_grad": len(tri) - 1, "setting_after": get_scan_backend()}
        ref = step("torch", device) if not SMOKE else step("numba", "cpu")
        errs = compare(tri, ref)
        res["triton_vs_torch_path" if not SMOKE else "triton_vs_numba_cpu"] = {
            "logits": errs.pop("logits"), "worst_param_grad": max(errs.values()),
            "worst_param": max(errs, key=errs.get)}
        if not autocast and not SMOKE:
            errs = compare(tri, step("numba", "cpu"))
            res["triton_vs_numba_cpu"] = {"logits": errs.pop("logits"), "worst_param_grad": max(errs.values())}
        model.to(device)
        limit = 5e-2 if autocast else 1e-3
        worst = max(v["worst_param_grad"] for k, v in res.items() if k.startswith("triton_vs"))
        res["pass"] = worst < limit
        verdicts.append(res["pass"])
        return res

    # the most telling checks first: a later one is skipped when the section's budget runs out
    shape, full, ref = fp32_shapes[0]
    run.step(out, "fp32_0", check_fp32, shape, full, ref, need=20)
    run.step(out, "bf16", check_bf16, bf16_shape, need=20)
    run.step(out, "caduceus_ph_fp32", model_check, "fp32", need=20)
    for i, (shape, full, ref) in enumerate(fp32_shapes[1:], start=1):
        run.step(out, f"fp32_{i}", check_fp32, shape, full, ref, need=20)
    for i, shape in enumerate(long_shapes):
        run.step(out, f"fp32_long_{i}", check_fp32, shape, True, False, need=40)
    if not SMOKE:
        run.step(out, "caduceus_ph_bf16_autocast", model_check, "bf16-autocast", need=20)
    out["all_pass"] = bool(verdicts) and all(verdicts)
    out["limits"] = {"fp32_rel": limit_fp32, "bf16_rel": limit_bf16, "model_fp32": 1e-3, "model_bf16": 5e-2}


def time_fn(fn, reps: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return {"median_ms": round(1e3 * statistics.median(ts), 4), "min_ms": round(1e3 * min(ts), 4), "reps": reps}


def scan_timer(backend: str, shape, dtype, reps: int, fwd_only: bool = False, warmup: int = 2) -> dict:
    from genodiff.ops import selective_scan

    device = dev()
    x = inputs(*shape, dtype=dtype)
    leaves = [x[k].to(device).requires_grad_() for k in NAMES]
    gout = torch.randn(shape[0], shape[1], shape[2], device=device, dtype=dtype)

    def once():
        if fwd_only:
            with torch.no_grad():
                selective_scan(*leaves, delta_softplus=True, backend=backend)
            return
        out = selective_scan(*leaves, delta_softplus=True, backend=backend)
        torch.autograd.backward(out, gout)
        for t in leaves:
            t.grad = None

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    res = time_fn(once, reps, warmup=1 if SMOKE else warmup)
    if torch.cuda.is_available():
        res["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return res


def section_b(run: Run, out: dict) -> None:
    from genodiff.ops import _scan_triton, causal_conv1d_cuda_available, mamba_ssm_available
    from genodiff.ops.conv import _load_cuda_fn, causal_conv1d_ref

    mamba = (not SMOKE) and mamba_ssm_available()
    if SMOKE:
        shapes = {"L1024": (1, 4, 64, 16), "L131072": (1, 2, 256, 16)}
        reps = {"L1024": 1, "L131072": 1}
        sweep = [(16, 2, 2), (32, 4, 4)]
    else:
        shapes = {"L1024": (8, 236, 1024, 16), "L131072": (1, 236, 131072, 16)}
        reps = {"L1024": 30, "L131072": 5}
        # (chunk, warps fwd, warps bwd); the default 64/4/4 is timed above
        sweep = [(32, 2, 2), (32, 4, 4), (64, 4, 8), (128, 4, 8), (128, 8, 8), (256, 8, 8)]
    out["shapes(b,d,L,N)"] = shapes
    out["triton_default"] = {k: {"chunk": _scan_triton.default_chunk(s[2], s[3]), **{
        w: _scan_triton.CONFIG[w] for w in ("num_warps", "num_warps_bwd")}} for k, s in shapes.items()}
    for key, shape in shapes.items():
        r = reps[key]
        for dtype in (torch.bfloat16, torch.float32):
            dn = "bf16" if dtype == torch.bfloat16 else "fp32"
            run.step(out, f"{key}_{dn}_triton_fwd_bwd", scan_timer, "triton", shape, dtype, r, need=10)
            run.step(out, f"{key}_{dn}_triton_fwd", scan_timer, "triton", shape, dtype, r, True, need=5)
            if mamba:
                run.step(out, f"{key}_{dn}_mamba_ssm_fwd_bwd", scan_timer, "mamba_ssm", shape, dtype, r, need=10)
            run.step(out, f"{key}_{dn}_torch_fwd_bwd", scan_timer, "torch", shape, dtype, max(1, r // 5),
                     warmup=1, need=30 if key == "L1024" else 60)

    def speedups():
        res = {}
        for key in shapes:
            for dn in ("bf16", "fp32"):
                tri = out.get(f"{key}_{dn}_triton_fwd_bwd") or {}
                if "median_ms" not in tri:
                    continue
                for other in ("torch", "mamba_ssm"):
                    o = out.get(f"{key}_{dn}_{other}_fwd_bwd") or {}
                    if "median_ms" in o:
                        res[f"{key}_{dn}_{other}_over_triton"] = round(o["median_ms"] / tri["median_ms"], 2)
        return res

    out["speedups"] = speedups()
    run.save()

    def run_sweep(key):
        shape, rows = shapes[key], []
        old = dict(_scan_triton.CONFIG)
        try:
            for chunk, wf, wb in sweep:
                if run.left() < 15:
                    rows.append({"skipped": "time budget"})
                    break
                _scan_triton.CONFIG.update(chunk=chunk, num_warps=wf, num_warps_bwd=wb)
                try:
                    t = scan_timer("triton", shape, torch.bfloat16, max(1, reps[key] // 2))
                    rows.append({"chunk": chunk, "warps_fwd": wf, "warps_bwd": wb, **t})
                except Exception as exc:  # noqa: BLE001
                    rows.append({"chunk": chunk, "warps_fwd": wf, "warps_bwd": wb, "error": str(exc)[:300]})
        finally:
            _scan_triton.CONFIG.clear()
            _scan_triton.CONFIG.update(old)
        ok = [r for r in rows if "median_ms" in r]
        return {"rows": rows, "best": min(ok, key=lambda r: r["median_ms"]) if ok else None}


    def conv_timer(shape, dtype, impl):
        b, d, L = shape[:3]
        device = dev()
        x = torch.randn(b, d, L, device=device, dtype=dtype, requires_grad=True)
        w = torch.randn(d, 4, device=device, requires_grad=True)
        bias = torch.randn(d, device=device, requires_grad=True)
        fn = causal_conv1d_ref if impl == "torch" else _load_cuda_fn()
        g = torch.randn(b, d, L, device=device, dtype=dtype)

        def once():
            y = fn(x, w.to(dtype) if impl != "torch" else w, bias.to(dtype) if impl != "torch" else bias,
                   activation="silu")
            torch.autograd.backward(y, g)
            x.grad = w.grad = bias.grad = None

        return time_fn(once, reps[key] if not SMOKE else 1)

    for key, shape in shapes.items():
        for dtype in (torch.bfloat16, torch.float32):
            dn = "bf16" if dtype == torch.bfloat16 else "fp32"
            run.step(out, f"conv_{key}_{dn}_torch_fwd_bwd", conv_timer, shape, dtype, "torch", need=5)
            if not SMOKE and causal_conv1d_cuda_available() and _load_cuda_fn():
                run.step(out, f"conv_{key}_{dn}_causal_conv1d_fwd_bwd", conv_timer, shape, dtype, "cuda", need=5)
            c, s = out.get(f"conv_{key}_{dn}_torch_fwd_bwd") or {}, out.get(f"{key}_{dn}_triton_fwd_bwd") or {}
            if "median_ms" in c and "median_ms" in s:
                out[f"conv_{key}_{dn}_torch_over_triton_scan"] = round(c["median_ms"] / s["median_ms"], 3)

    def profile_step():
        from torch.profiler import ProfilerActivity, profile

        from genodiff.models.registry import build_model
        from genodiff.ops import scan_backend

        device = dev()
        torch.manual_seed(0)
        kw = dict(d_model=8, n_layer=2) if SMOKE else dict(d_model=118, n_layer=4)
        model = build_model("caduceus", **kw).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = (2, 64) if SMOKE else (64, 1024)
        ids = torch.randint(7, 11, batch, device=device)

        def train_step():
            with scan_backend("triton"), torch.autocast(device, torch.bfloat16, enabled=device == "cuda"):
                logits = model(ids)
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        timing = time_fn(train_step, 1 if SMOKE else 5)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(1 if SMOKE else 3):
                train_step()
            sync()
        rows = []
        for ev in prof.key_averages():
            if device == "cpu":
                t = ev.self_cpu_time_total
            elif "CUDA" in str(getattr(ev, "device_type", "")):  # kernels only (their CPU-side ops hold no time)
                t = getattr(ev, "self_device_time_total", None) or getattr(ev, "self_cuda_time_total", 0)
            else:
                continue
            if t:
                rows.append((t, ev.key, ev.count))
        rows.sort(reverse=True)
        total = sum(t for t, _, _ in rows) or 1.0
        cats = {"selective_scan": 0.0, "conv": 0.0, "gemm": 0.0, "other": 0.0}
        for t, key_, _ in rows:
            k = key_.lower()
            cat = ("selective_scan" if "scan" in k else "conv" if "conv" in k else
                   "gemm" if any(s in k for s in ("gemm", "cutlass", "sm90", "xmma", "nvjet", "matmul", "mm_"))
                   else "other")
            cats[cat] += t
        return {"batch(b,L)": batch, "tokens_per_step": batch[0] * batch[1], "step": timing,
                "tokens_per_s_model_only": round(batch[0] * batch[1] / (timing["median_ms"] / 1e3)),
                "share_by_category": {k: round(v / total, 4) for k, v in cats.items()},
                "top_kernels": [{"name": n[:120], "self_time_ms": round(t / 1e3 / (1 if SMOKE else 3), 4),
                                 "calls": c} for t, n, c in rows[:20]]}

    run.step(out, "caduceus_ph_train_step_profile", profile_step, need=20)
    run.step(out, "sweep_L1024_bf16", run_sweep, "L1024", need=30)
    run.step(out, "sweep_L131072_bf16", run_sweep, "L131072", need=60)


class StepTimer:
    """Lightning callback (built lazily): per-step time, data wait (end of one batch -> start of the next),
    and a stop when the section's deadline comes (the run then ends early, still exporting)."""

    def __new__(cls, deadline: float):
        import lightning as L

        class _Timer(L.Callback):
            def __init__(self):
                self.batch_end, self.wait, self.step, self.stopped_early = None, [], [], False

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                now = time.perf_counter()
                if self.batch_end is not None:
                    self.wait.append(now - self.batch_end)
                self.start = now

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                sync()
                self.batch_end = time.perf_counter()
                self.step.append(self.batch_end - self.start)
                if time.time() > deadline and not trainer.should_stop:
                    trainer.should_stop = True
                    self.stopped_early = True

        return _Timer()


def section_c(run: Run, out: dict, args) -> None:
    from genodiff.config import compose_config
    from genodiff.tasks import train

    if not CHR2.is_file():
        raise FileNotFoundError(f"{CHR2} missing: run perf/prepare_gpu_wheels.sh and carry .gpu_data")
    os.environ["GENODIFF_SHARED"] = str(DATA_ROOT)  # experiment/pretrain=chr2_slice reads the slice from there
    work = Path(tempfile.mkdtemp(prefix="gpu_run_pretrain_"))
    os.environ.setdefault("GENODIFF_DATA", str(work / "cache"))
    steps, batch = (3, 2) if SMOKE else (args.steps, args.batch)
    overrides = ["experiment/pretrain=chr2_slice", "model=caduceus_ph", "objective=mdlm", "trainer=auto",
                 f"trainer.precision={'32-true' if SMOKE else 'bf16-mixed'}", "trainer.log_every_n_steps=50",
                 f"ops.scan_backend={'auto' if SMOKE else 'triton'}", f"global_batch_size={batch}",
                 f"max_per_device_batch_size={batch}", f"max_steps={steps}", f"val_every_n_steps={steps}",
                 f"checkpoint_every_n_steps={steps}", "loggers=[csv]", "progress=false",
                 f"data.num_workers={0 if SMOKE else args.workers}", f"output_dir={work / 'run'}"]
    if SMOKE:
        overrides += ["data.max_eval_windows=4"]
    out["overrides"] = overrides
    cfg = compose_config("pretrain", overrides)
    out["fasta"] = str(cfg.data.fasta)
    out["trainer"] = {k: str(v) for k, v in cfg.trainer.items()}
    warm = min(5, max(0, steps - 2))
    timer = StepTimer(run.deadline - (10 if SMOKE else 45))  # keep time for validation, export and section d
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    summary = train.run(cfg, callbacks=[timer])
    out["wall_s"] = round(time.time() - t0, 1)
    step, wait = timer.step[warm:], timer.wait[max(0, warm - 1):]
    step_s = statistics.median(step) if step else float("nan")
    wait_s = statistics.mean(wait) if wait else 0.0
    mean_step = statistics.mean(step) if step else float("nan")
    tokens = batch * 1024
    metrics = summary.get("metrics", {})
    out.update({
        "steps_run": len(timer.step), "steps_timed": len(step), "stopped_early_by_budget": timer.stopped_early,
        "batch": batch, "window": 1024, "tokens_per_step": tokens,
        "step_s_median": round(step_s, 4), "step_s_mean": round(mean_step, 4),
        "first_steps_s": [round(s, 3) for s in timer.step[:warm]],
        "data_wait_s_mean": round(wait_s, 5),
        "data_wait_share": round(wait_s / (mean_step + wait_s), 4) if step else None,
        "tokens_per_s": round(tokens / (mean_step + wait_s), 1) if step else None,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "metrics": metrics, "run_dir": summary.get("run_dir"), "export": summary.get("export"),
    })
    bpb = metrics.get("val/bits_per_token")
    if bpb is not None:
        out["val_bits_per_base"] = round(bpb, 4)
        out["val_bits_per_base_source"] = "Lightning validation at the last step (val/bits_per_token)"
    run.save()
    if bpb is None and summary.get("export") and run.left() > 20:  # stopped early: evaluate the export
        from genodiff.tasks import evaluate

        ecfg = compose_config("evaluate", [
            "data=local", f"data.fasta={CHR2}", "data.window=1024", "data.valid_tail_bp=100000",
            "data.test_tail_bp=200000", "data.max_eval_windows=128", f"checkpoints=[{summary['run_dir']}]",
            "split=valid", "num_samples=4", "markov_orders=[]", "batch_size=32", f"output_dir={work / 'eval'}",
            f"ops.scan_backend={'auto' if SMOKE else 'triton'}"])
        res = evaluate.run(ecfg)
        out["evaluate_result"] = json.loads(json.dumps(res, default=str))
        rows = [r for r in (res.get("rows") or res.get("results") or []) if isinstance(r, dict)]
        for r in rows:
            if r.get("bits_per_base") is not None:
                out["val_bits_per_base"] = round(float(r["bits_per_base"]), 4)
                out["val_bits_per_base_source"] = "genodiff evaluate on the export (valid split, 4 draws)"
    run.data["export_for_generation"] = summary.get("export") and summary.get("run_dir")


def section_d(run: Run, out: dict) -> None:
    from genodiff.config import compose_config
    from genodiff.tasks import sample

    ckpt = run.data.get("export_for_generation")
    work = Path(tempfile.mkdtemp(prefix="gpu_run_sample_"))
    if not ckpt:  # section c failed: a short pretrain to have a model
        from genodiff.tasks import train

        os.environ["GENODIFF_SHARED"] = str(DATA_ROOT)
        os.environ.setdefault("GENODIFF_DATA", str(work / "cache"))
        cfg = compose_config("pretrain", ["experiment/pretrain=chr2_slice", "model=caduceus_ph", "trainer=auto",
                                          "max_steps=2", "val_every_n_steps=0", "checkpoint_every_n_steps=2",
                                          "loggers=[]", "progress=false", f"output_dir={work / 'run'}",
                                          "global_batch_size=2", "max_per_device_batch_size=2"])
        ckpt = train.run(cfg)["run_dir"]
        out["note"] = "section c gave no model: 2-step model (untrained), timing only"
    num, length = (2, 128) if SMOKE else (100, 1024)

    def warm_up():  # untimed: compiles the inference kernels (Triton JIT; numba on the CPU) before the timing
        cfg = compose_config("sample", [f"checkpoint={ckpt}", "num_samples=2", "length=32", "batch_size=2",
                                        "sampler=first_hitting", "progress=false", f"output_dir={work / 'warm'}",
                                        f"ops.scan_backend={'auto' if SMOKE else 'triton'}"])
        t = time.time()
        sample.run(cfg)
        return {"seconds": round(time.time() - t, 2)}

    run.step(out, "warm_up", warm_up, need=10)
    for sampler, steps in (("first_hitting", None), ("cached", length)):
        def go(sampler=sampler, steps=steps):
            overrides = [f"checkpoint={ckpt}", f"num_samples={num}", f"length={length}", f"batch_size={num}",
                         f"sampler={sampler}", "progress=false", f"output_dir={work / sampler}", "seed=0",
                         f"ops.scan_backend={'auto' if SMOKE else 'triton'}"]
            if steps:
                overrides.append(f"steps={steps}")
            cfg = compose_config("sample", overrides)
            sync()
            t = time.time()
            res = sample.run(cfg)
            sync()
            wall = time.time() - t
            return {"sequences": num, "length": length, "batch": num, "steps": steps, "wall_s": round(wall, 2),
                    "sequences_per_s": round(num / wall, 3), "denoiser_calls": res.get("denoiser_calls"),
                    "sampler_seconds": res.get("seconds")}

        run.step(out, sampler, go, need=10)


def goals(run: Run) -> dict:
    s = run.data["sections"]
    b, c = s.get("b_timing", {}), s.get("c_pretrain", {})
    sp = b.get("speedups", {})
    g = {
        "triton_over_torch_L1024": {"goal": ">= 50x", "fp32": sp.get("L1024_fp32_torch_over_triton"),
                                    "bf16": sp.get("L1024_bf16_torch_over_triton")},
        "triton_vs_mamba_ssm_L1024": {"goal": "triton time <= 2x mamba-ssm",
                                      "fp32_triton_over_mamba": _inv(sp.get("L1024_fp32_mamba_ssm_over_triton")),
                                      "bf16_triton_over_mamba": _inv(sp.get("L1024_bf16_mamba_ssm_over_triton"))},
        "training_tokens_per_s": {"goal": ">= 1,000,000", "measured": c.get("tokens_per_s")},
        "training_data_wait_share": {"goal": "< 0.05", "measured": c.get("data_wait_share")},
        "correctness_all_pass": s.get("a_correctness", {}).get("all_pass"),
    }
    return g


def _inv(x):
    return None if not x else round(1.0 / x, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="every section tiny, on the CPU")
    ap.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_run_out")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all sections (default 400; smoke 900)")
    ap.add_argument("--sections", default="a,b,c,d")
    ap.add_argument("--steps", type=int, default=300, help="pretrain steps (section c stops earlier at its budget)")
    ap.add_argument("--batch", type=int, default=256, help="pretrain batch (1,024-bp windows)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers in section c")
    args = ap.parse_args()
    if not SMOKE and not torch.cuda.is_available():
        raise SystemExit("gpu_run: no CUDA device (use --cpu-smoke on a CPU)")
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    run = Run(outdir / ("gpu_run_smoke.json" if SMOKE else "gpu_run.json"), args.budget or (900 if SMOKE else 400))
    run.data["args"] = vars(args)
    run.data["environment"] = environment(run)
    run.save()
    wanted = set(args.sections.split(","))
    # shares of the time left when each section starts (a: 20 %, b: 35 % of the rest, c: 75 % of the rest, d: all)
    plan = [("a", "a_correctness", 0.20, section_a), ("b", "b_timing", 0.35, section_b),
            ("c", "c_pretrain", 0.75, None), ("d", "d_generate", 1.0, section_d)]
    for key, name, share, fn in plan:
        if key not in wanted:
            continue
        with run.section(name, share) as out:
            if key == "c":
                section_c(run, out, args)
            else:
                fn(run, out)
    run.data["goals"] = goals(run)
    run.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    run.save()
    print(json.dumps(run.data["goals"], indent=1))
    print(f"wrote {run.path} ({run.data['elapsed_s']} s)")
    if run.data["errors"]:
        print("section errors:", json.dumps(run.data["errors"], indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
