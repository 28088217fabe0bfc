"""Compile genodiff's Triton selective-scan kernels for a GPU architecture on the CPU (no GPU needed) and
report their resource use per configuration: registers per thread, stack (spills) and shared memory, read
from the cubin with the cuobjdump that ships with triton. Prints one JSON object.

    python perf/triton_resources.py [--arch 90] [--dstate 16] [--configs 32:2,64:2,64:4,128:4,128:8,256:8]

What it tells: a kernel at 255 registers with a non-zero stack spills to local memory (slow); fewer
registers per thread allow more resident warps. It does not time anything (that needs the GPU:
perf/gpu_run.sh). Triton's version here may differ from the GPU machine's; the code generated can differ.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import tempfile
import time

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from genodiff.ops import _triton_kernels as K

PTR_ACT = ("u_ptr", "dt_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr", "du_ptr", "ddt_ptr", "dz_ptr", "dout_ptr")


def signature(fn, act: str, constexprs: dict) -> dict:
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = act if name in PTR_ACT else "*fp32"
        else:
            sig[name] = "i32"
    return sig


def usage(cubin: bytes) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", text)
    return dict(zip(("registers", "stack_bytes", "shared_bytes", "local_bytes"), map(int, m.groups()))) if m else {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--dstate", type=int, default=16)
    ap.add_argument("--configs", default="32:2,64:2,64:4,128:4,128:8,256:8")
    ap.add_argument("--dtypes", default="fp32,bf16")
    args = ap.parse_args()
    target = GPUTarget("cuda", args.arch, 32)
    block_n = 1 << max(0, args.dstate - 1).bit_length()
    rows = []
    for act in args.dtypes.split(","):
        for name, fn, extra in (("fwd", K.scan_fwd_kernel, {"SAVE_STATES": True, "STORE_LAST": True}),
                                ("bwd", K.scan_bwd_kernel, {"HAS_DLAST": False})):
            for spec in args.configs.split(","):
                chunk, warps = (int(v) for v in spec.split(":"))
                ce = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, BLOCK_N=block_n, BLOCK_T=chunk,
                          ACC=tl.float32, **extra)
                t0 = time.time()
                k = triton.compile(ASTSource(fn=fn, signature=signature(fn, "*" + act, ce), constexprs=ce),
                                   target=target, options={"num_warps": warps})
                rows.append({"kernel": name, "inputs": act, "chunk": chunk, "num_warps": warps,
                             "compile_s": round(time.time() - t0, 1), **usage(k.asm["cubin"])})
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"triton": triton.__version__, "arch": f"sm_{args.arch}", "dstate": args.dstate, "rows": rows},
                     indent=1))


if __name__ == "__main__":
    main()
