#!/usr/bin/env bash
# GPU check for genodiff.ops: install the mamba-ssm / causal-conv1d CUDA kernels, check that the CUDA
# path matches the CPU path (and the float64 reference) numerically, and time both. One short script.
#
# The GPU machine has no network. Prepare the packages on a machine with pip access, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --no-binary :all: -d .whl mamba-ssm causal-conv1d
# (sdists, built there against that machine's torch; pick versions whose setup.py supports the GPU
# machine's CUDA -- 13.x with torch 2.11 as of 2026-11 -- or put matching prebuilt wheels in .whl/).
# Then run there from the repo root with `.whl` carried:   bash perf/gpu_check.sh
# Building both sdists for one architecture (sm_90) should take several minutes on 16 cores (never
# measured here: no GPU was lent to the session that wrote this); set
# GPU_CHECK_SKIP_INSTALL=1 when the packages are already importable. Results: stdout and, when $OUT is
# set, $OUT/gpu_check.json and $OUT/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec > >(tee "$LOG") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" || exit 1

have() { $PY -c "import $1" >/dev/null 2>&1; }
if [ "${GPU_CHECK_SKIP_INSTALL:-0}" != 1 ] && ! { have causal_conv1d && have mamba_ssm.ops.selective_scan_interface; }; then
  [ -d .whl ] || { echo "no .whl/ folder with mamba-ssm / causal-conv1d packages (see header)"; exit 1; }
  CC=${TORCH_CUDA_ARCH_LIST:-$($PY -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')")}
  export TORCH_CUDA_ARCH_LIST="$CC" MAX_JOBS=${MAX_JOBS:-$(nproc)} CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE
  export CAUSAL_CONV1D_SKIP_CUDA_BUILD=FALSE MAMBA_SKIP_CUDA_BUILD=FALSE
  for pkg in causal_conv1d mamba_ssm; do          # causal-conv1d first: mamba-ssm imports it
    f=$(ls .whl/${pkg}-*.whl .whl/${pkg//_/-}-*.tar.gz .whl/${pkg}-*.tar.gz 2>/dev/null | head -n1)
    [ -n "$f" ] || { echo "no $pkg package in .whl/"; exit 1; }
    echo "== installing $f (arch $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)"; t0=$(date +%s)
    src="$f"
    if [ "${f%.tar.gz}" != "$f" ]; then
      # sdist: unpack and, unless GPU_CHECK_ALL_ARCHS=1, rewrite the hard-coded -gencode list of its
      # setup.py to this GPU's architecture only (building every arch does not fit a 10-minute call)
      src=/tmp/gpu_check_build/$pkg; rm -rf "$src"; mkdir -p "$src"; tar -xzf "$f" -C "$src" --strip-components=1
      [ "${GPU_CHECK_ALL_ARCHS:-0}" = 1 ] || $PY - "$src/setup.py" "${TORCH_CUDA_ARCH_LIST//./}" <<'PYEOF'
import re, sys
path, cc = sys.argv[1], sys.argv[2]
s = open(path).read()
s2 = re.sub(r"arch=compute_\d+a?,code=(sm|compute)_\d+a?", f"arch=compute_{cc},code=sm_{cc}", s)
open(path, "w").write(s2)
print(f"   setup.py: {len(re.findall(r'arch=compute_', s))} gencode entries -> sm_{cc}")
PYEOF
    fi
    $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir "$src" || exit 1
    echo "   installed in $(( $(date +%s) - t0 )) s"
  done
fi

$PY - <<'EOF'
import json, os, time
import torch
from genodiff.ops import available_kernels, causal_conv1d
from genodiff.ops.conv import causal_conv1d_ref
from genodiff.ops.selective_scan import selective_scan

kern = available_kernels()
print("available_kernels:", kern)
assert kern["mamba_ssm_cuda"] and kern["causal_conv1d_cuda"], "CUDA packages not importable"
res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "kernels": kern, "checks": [], "times_ms": {}}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
ok = True

def inputs(b, d, L, N, G=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, k=1.0: torch.randn(*s, generator=g) * k
    bc = (b, N, L) if G is None else (b, G, N, L)
    return [r(b, d, L), r(b, d, L, k=0.5) - 1.0, -torch.exp(r(d, N, k=0.5)), r(*bc), r(*bc), r(d), r(b, d, L), r(d, k=0.3)]

def fwd_bwd(xs, backend, dev):
    # loss on `out` only: mamba-ssm's backward ignores gradients flowing into last_state
    leaves = [x.to(dev).detach().requires_grad_() for x in xs]
    out, st = selective_scan(*leaves, delta_softplus=True, return_last_state=True, backend=backend)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(out.shape, generator=g).to(dev)
    loss = (out * w).sum()
    grads = torch.autograd.grad(loss, leaves)
    return [t.detach().double().cpu() for t in (out, st, *grads)]

def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))

# 1) numerics: CUDA (mamba-ssm) vs CPU fast path vs float64 reference
for shape in [(2, 8, 1, 16, None), (2, 16, 37, 16, None), (2, 16, 200, 4, 2), (4, 256, 1024, 16, None)]:
    xs = inputs(*shape)
    cuda = fwd_bwd(xs, "cuda", "cuda")
    cpu = fwd_bwd(xs, "auto", "cpu")
    errs = {n: rel(a, b) for n, a, b in zip(("out", "last_state") + tuple("d" + k for k in NAMES), cuda, cpu)}
    if shape[2] <= 200:
        ref = fwd_bwd([x.double() for x in xs], "reference", "cpu")
        errs_ref = {n: rel(a, b) for n, a, b in zip(("out", "last_state") + tuple("d" + k for k in NAMES), cuda, ref)}
    else:
        errs_ref = None
    good = max(errs.values()) < 1e-4
    ok &= good
    res["checks"].append({"shape(b,d,L,N,G)": shape, "cuda_vs_cpu_rel": errs, "cuda_vs_ref64_rel": errs_ref, "pass(<1e-4)": good})
    print(shape, "cuda vs cpu max rel", f"{max(errs.values()):.2e}", "PASS" if good else "FAIL")

x, w, bias = torch.randn(4, 256, 1024), torch.randn(256, 4), torch.randn(256)
e = rel(causal_conv1d(x.cuda(), w.cuda(), bias.cuda(), "silu").cpu().double(), causal_conv1d_ref(x, w, bias, "silu").double())
ok &= e < 1e-5
res["checks"].append({"causal_conv1d_cuda_vs_torch_rel": e})
print("causal_conv1d cuda vs torch rel", f"{e:.2e}")

# 2) timing fwd+bwd at B=4, D=256, L=1024, N=16 (float32): CUDA kernel, CPU fast path, torch blocked on GPU
xs = inputs(4, 256, 1024, 16)
def timeit(backend, dev, reps):
    leaves = [x.to(dev).requires_grad_() for x in xs]
    def once():
        out = selective_scan(*leaves, delta_softplus=True, backend=backend)
        torch.autograd.grad(out.sum(), leaves)
    once()
    if dev == "cuda":
        torch.cuda.synchronize()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter(); once()
        if dev == "cuda":
            torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return 1e3 * sorted(t)[len(t) // 2]
res["times_ms"]["cuda_mamba_ssm_fwd_bwd"] = timeit("cuda", "cuda", 50)
res["times_ms"]["cuda_torch_blocked_fwd_bwd"] = timeit("blocked", "cuda", 10)
res["times_ms"]["cpu_fast_fwd_bwd"] = timeit("auto", "cpu", 5)
res["cpu_threads"] = torch.get_num_threads()
res["all_pass"] = bool(ok)
print(json.dumps(res["times_ms"], indent=1), "all_pass:", ok)
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "gpu_check.json"), "w") as f:
        json.dump(res, f, indent=1)
raise SystemExit(0 if ok else 1)
EOF
