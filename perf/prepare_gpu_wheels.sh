#!/usr/bin/env bash
# Prepare what perf/gpu_run.sh needs on the offline GPU machine, on a machine with network access.
# Run from anywhere; writes into the repository root:
#
#   .whl/       wheels of the packages genodiff imports that the GPU image lacks (Python 3.12, manylinux
#               x86_64): hydra-core, omegaconf, antlr4-python3-runtime, pyfaidx, biopython, platformdirs
#               (genodiff itself is copied from the checkout by gpu_run.sh, so the code can change after this).
#   .gpu_data/  a copy of the hg38 chr2 slice (../shared does not travel to the GPU machine), in the layout
#               $GENODIFF_SHARED expects (data/hg38_chr2_slice/chr2_1-2000000.fa.gz), and SOURCE.json (the
#               commit and a digest of genodiff/*.py, so the GPU results say which code they measured).
#
# Both folders are git-ignored (.gitignore and .git/info/exclude) and together stay far below the 64 MiB
# the device tool carries (about 5 MiB). Options:
#   --with-mamba   also download the mamba-ssm and causal-conv1d sources (sdists, into .whl/src/) for the
#                  optional build step on the GPU (`bash perf/gpu_run.sh --build-mamba`, several minutes).
# Versions: the pins below (the combination tested here), or NAME_VERSION variables, e.g. HYDRA_VERSION=1.3.2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
WITH_MAMBA=0
for arg in "$@"; do
  case "$arg" in
    --with-mamba) WITH_MAMBA=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

for pattern in /.whl/ /.gpu_data/ /.gpu_build/; do
  grep -qxF "$pattern" .git/info/exclude 2>/dev/null || echo "$pattern" >> .git/info/exclude
done

mkdir -p .whl .gpu_data/data/hg38_chr2_slice
# name==version of every package genodiff imports that the GPU image ("cuda", Python 3.12) does not hold
PACKAGES=(
  "hydra-core==${HYDRA_VERSION:-1.3.8}"
  "omegaconf==${OMEGACONF_VERSION:-2.3.1}"
  "antlr4-python3-runtime==${ANTLR_VERSION:-4.9.3}"   # the runtime omegaconf 2.3 / hydra 1.3 pin (4.9.*)
  "pyfaidx==${PYFAIDX_VERSION:-0.9.2.2}"
  "biopython==${BIOPYTHON_VERSION:-1.88}"
  "platformdirs==${PLATFORMDIRS_VERSION:-4.14.8}"
)
have() {  # a wheel of this name==version is already in .whl/
  local name=${1%%==*} version=${1##*==}
  ls .whl/ 2>/dev/null | grep -qiE "^${name//-/[-_]}-${version//./\\.}-.*\.whl$"
}
for spec in "${PACKAGES[@]}"; do
  if have "$spec"; then echo "have   $spec"; continue; fi
  echo "fetch  $spec"
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "$spec"; then
    # no wheel on the index (antlr4-python3-runtime 4.9.3 is a pure-Python sdist): build a py3-none-any one
    echo "       no wheel published: building one from the sdist"
    "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w .whl "$spec"
  fi
done

rm -f .whl/genodiff-*.whl  # (earlier versions of this script put one here)

if [ "$WITH_MAMBA" = 1 ]; then
  mkdir -p .whl/src
  for spec in "causal-conv1d==${CAUSAL_CONV1D_VERSION:-1.5.2}" "mamba-ssm==${MAMBA_VERSION:-2.2.5}"; do
    "$PY" -m pip download -q --no-deps --no-binary=:all: -d .whl/src "$spec"
  done
fi

SHARED=${GENODIFF_SHARED:-$ROOT/../shared}
SRC=$SHARED/data/hg38_chr2_slice/chr2_1-2000000.fa.gz
[ -f "$SRC" ] || { echo "missing $SRC (set GENODIFF_SHARED)" >&2; exit 1; }
cp -f "$SRC" .gpu_data/data/hg38_chr2_slice/
chmod u+w .gpu_data/data/hg38_chr2_slice/*

"$PY" - "$ROOT" <<'EOF'
import hashlib, json, pathlib, subprocess, sys, time
root = pathlib.Path(sys.argv[1])
def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return None
h = hashlib.sha256()
for p in sorted((root / "genodiff").rglob("*.py")):
    h.update(p.relative_to(root).as_posix().encode()); h.update(p.read_bytes())
info = {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain")),
        "genodiff_py_sha256": h.hexdigest(), "prepared": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
(root / ".gpu_data" / "SOURCE.json").write_text(json.dumps(info, indent=1))
print("source:", info)
EOF

du -sh .whl .gpu_data
echo "total: $(du -sk .whl .gpu_data | awk '{s+=$1} END {printf "%.1f MiB", s/1024}') (limit 64 MiB)"
ls -1 .whl
