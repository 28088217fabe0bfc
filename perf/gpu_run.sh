#!/usr/bin/env bash
# genodiff's one GPU run: correctness and speed of the fused Triton selective scan, the real pretrain path and
# generation on one GPU, in one call, written to ONE JSON file. Replaces perf/gpu_check.sh.
#
# PREPARE (on a machine with network access, once per code change; the GPU machine has none):
#     bash perf/prepare_gpu_wheels.sh              # add --with-mamba for the optional mamba-ssm build step
#   writes two git-ignored folders into the repository root (about 5 MiB together; the device tool carries at
#   most 64 MiB): .whl/ (wheels of hydra-core, omegaconf, antlr4-python3-runtime, pyfaidx, biopython,
#   platformdirs for Python 3.12 / manylinux x86_64) and .gpu_data/ (a copy
#   of the hg38 chr2 slice from ../shared/data, which does not travel, plus SOURCE.json: commit + code digest).
#   Check it here first, on the CPU (Triton under its interpreter, tiny shapes, ~5-10 minutes on 2 cores):
#     bash perf/gpu_run.sh --cpu-smoke
#
# RUN (on the GPU machine, from the repository root, with both folders carried), e.g. through the device tool:
#     run(command="bash perf/gpu_run.sh", carry=[".whl", ".gpu_data"], timeout_s=540)
#   Nothing is compiled for the Triton path (Triton JIT-compiles its kernels, a few seconds each). The script
#   installs the wheels into /tmp/site (no network, nothing installed into the image), copies genodiff from
#   this checkout into /tmp/site in its installed layout (configs/ -> genodiff/configs), then runs
#   perf/gpu_run.py under `timeout` so that it ends within 8 minutes whatever happens: the driver gives each
#   section a share of a 400-second budget and writes the JSON after every step, so a failure or a timeout
#   keeps everything measured before it. Environment knobs: GPU_RUN_BUDGET (seconds, default 400),
#   GPU_RUN_ARGS (extra driver arguments, e.g. "--sections a,b --steps 200 --batch 128"), PYTHON.
#
# WRITES $OUT/gpu_run.json ($OUT: the device tool's output folder; default /tmp/gpu_run_out) and
#   $OUT/gpu_run.log (this script's whole output). JSON: "environment" (GPU, driver, torch / CUDA / triton
#   versions, git commit or the prepared SOURCE.json, digest of genodiff/*.py), "sections": a_correctness
#   (Triton vs float64 reference vs CPU numba path at real shapes, fp32 and bf16, every gradient; a whole
#   Caduceus-Ph fwd+bwd), b_timing (fwd+bwd of Triton vs the torch path vs mamba-ssm at B=8 D=236 L=1,024
#   N=16 and B=1 D=236 L=131,072; chunk/warps sweep; torch conv vs causal-conv1d; a profiled training step),
#   c_pretrain (genodiff pretrain experiment/pretrain=chr2_slice model=caduceus_ph, MDLM, bf16-mixed,
#   scan_backend=triton: tokens/s, step time, peak memory, data-wait share, validation bits/base),
#   d_generate (genodiff sample: 100 x 1,024 bp, first-hitting and cached, sequences/s), "errors", "goals".
#
# OPTIONAL mamba-ssm comparison (not needed for the Triton path; several minutes of compilation, so it is a
# separate call before the run, on the same warm machine):
#     bash perf/prepare_gpu_wheels.sh --with-mamba                        # here: sources into .whl/src/
#     run(command="bash perf/gpu_run.sh --build-mamba", carry=[".whl", ".gpu_data"], timeout_s=600)
#   builds causal-conv1d and mamba-ssm wheels for this GPU's architecture only into .gpu_build/ (git-ignored,
#   kept while the machine stays warm); the next `bash perf/gpu_run.sh` installs them and adds mamba-ssm to
#   sections a and b.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUTDIR=${OUT:-/tmp/gpu_run_out}
mkdir -p "$OUTDIR"
SITE=${GPU_RUN_SITE:-/tmp/site}
WHEELS=${GPU_RUN_WHEELS:-$ROOT/.whl}
MODE=run
for arg in "$@"; do
  case "$arg" in
    --cpu-smoke) MODE=smoke ;;
    --build-mamba) MODE=mamba ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in run) LOG=$OUTDIR/gpu_run.log ;; smoke) LOG=$OUTDIR/gpu_run_smoke.log ;; *) LOG=$OUTDIR/gpu_build_mamba.log ;; esac
exec > >(tee "$LOG") 2>&1
START=$(date +%s)
echo "== gpu_run ($MODE) $(date -u '+%F %T UTC') in $ROOT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

install_site() {
  [ -d "$WHEELS" ] || { echo "no $WHEELS folder: run perf/prepare_gpu_wheels.sh and carry .whl (see header)"; exit 1; }
  rm -rf "$SITE"; mkdir -p "$SITE"
  deps=$(ls "$WHEELS"/*.whl | grep -v '/genodiff-')  # (an old prepared genodiff wheel is ignored)
  # shellcheck disable=SC2086
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $deps || exit 1
  # genodiff from this checkout, laid out as its wheel installs it (pyproject's package-dir: configs/ and
  # data_manifests/ become genodiff.configs and genodiff.data_manifests; a plain checkout on PYTHONPATH does
  # not resolve them). Copied rather than built: no setuptools needed (an old one cannot read pyproject's
  # license field), and always the code of this checkout.
  mkdir -p "$SITE/genodiff"
  (cd "$ROOT/genodiff" && tar --exclude=__pycache__ -cf - .) | (cd "$SITE/genodiff" && tar -xf -) || exit 1
  for pair in configs:configs data_manifests:data_manifests; do
    mkdir -p "$SITE/genodiff/${pair#*:}"
    (cd "$ROOT/${pair%%:*}" && tar --exclude=__pycache__ -cf - .) | (cd "$SITE/genodiff/${pair#*:}" && tar -xf -) || exit 1
  done
  if ls "$ROOT"/.gpu_build/*.whl >/dev/null 2>&1; then  # mamba-ssm / causal-conv1d built by --build-mamba
    $PY -m pip install -q --no-index --no-deps --no-cache-dir --target "$SITE" "$ROOT"/.gpu_build/*.whl || true
  fi
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  echo "installed into $SITE in $(( $(date +%s) - START )) s: $(ls "$SITE" | grep -c dist-info) distributions"
}

if [ "$MODE" = mamba ]; then
  # the mamba-ssm / causal-conv1d sdists of .whl/src, built for this GPU's architecture only
  mkdir -p .gpu_build
  CC=${TORCH_CUDA_ARCH_LIST:-$($PY -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')")}
  export TORCH_CUDA_ARCH_LIST="$CC" MAX_JOBS=${MAX_JOBS:-$(nproc)} CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE
  export CAUSAL_CONV1D_SKIP_CUDA_BUILD=FALSE MAMBA_SKIP_CUDA_BUILD=FALSE
  for pkg in causal_conv1d mamba_ssm; do    # causal-conv1d first: mamba-ssm imports it
    f=$(ls .whl/src/${pkg//_/-}-*.tar.gz .whl/src/${pkg}-*.tar.gz 2>/dev/null | head -n1)
    [ -n "$f" ] || { echo "no $pkg sources in .whl/src (prepare_gpu_wheels.sh --with-mamba)"; exit 1; }
    src=/tmp/gpu_build_src/$pkg; rm -rf "$src"; mkdir -p "$src"; tar -xzf "$f" -C "$src" --strip-components=1
    # one architecture: rewrite the hard-coded -gencode list of setup.py (every arch does not fit a call)
    $PY - "$src/setup.py" "${TORCH_CUDA_ARCH_LIST//./}" <<'PYEOF'
import re, sys
path, cc = sys.argv[1], sys.argv[2]
s = open(path).read()
s2 = re.sub(r"arch=compute_\d+a?,code=(sm|compute)_\d+a?", f"arch=compute_{cc},code=sm_{cc}", s)
open(path, "w").write(s2)
print(f"   {path}: {len(re.findall(r'arch=compute_', s))} gencode entries -> sm_{cc}")
PYEOF
    echo "== building $pkg (arch $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)"; t0=$(date +%s)
    $PY -m pip wheel -q --no-index --no-deps --no-build-isolation --no-cache-dir -w .gpu_build "$src" || exit 1
    echo "   built in $(( $(date +%s) - t0 )) s"
    $PY -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/gpu_build_site .gpu_build/${pkg}-*.whl
    export PYTHONPATH=/tmp/gpu_build_site${PYTHONPATH:+:$PYTHONPATH}
  done
  ls -l .gpu_build
  exit 0
fi

install_site
export PYTHONUNBUFFERED=1
if [ "$MODE" = smoke ]; then
  # CPU: Triton under its interpreter; the sections tiny; keep the 2 development cores for torch/numba
  exec timeout --signal=TERM --kill-after=30 "${GPU_RUN_TIMEOUT:-1500}" \
    $PY "$ROOT/perf/gpu_run.py" --cpu-smoke --out "$OUTDIR" ${GPU_RUN_ARGS:-}
fi
# the driver's budget plus install time stays under 8 minutes; `timeout` is the backstop
LEFT=$(( 470 - ($(date +%s) - START) ))
BUDGET=${GPU_RUN_BUDGET:-$(( LEFT - 60 < 400 ? LEFT - 60 : 400 ))}
# shellcheck disable=SC2086
timeout --signal=TERM --kill-after=15 "$LEFT" \
  $PY "$ROOT/perf/gpu_run.py" --out "$OUTDIR" --budget "$BUDGET" ${GPU_RUN_ARGS:-}
rc=$?
echo "== gpu_run finished with status $rc after $(( $(date +%s) - START )) s; results: $OUTDIR/gpu_run.json"
exit $rc
