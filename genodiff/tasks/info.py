"""``genodiff info``: versions, devices, usable kernels, the selective-scan backends (which can run, the
process setting, what ``auto`` picks on CPU and on CUDA) and which datasets are present and verified."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any

import torch
from omegaconf import DictConfig

from genodiff import __version__
from genodiff.data.manifest import dataset_status, default_cache_dir
from genodiff.ops import available_kernels, scan_backends_info

PACKAGES = ("torch", "numpy", "numba", "lightning", "hydra-core", "pyfaidx", "biopython", "scikit-learn",
            "safetensors", "triton", "mamba-ssm", "causal-conv1d")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect_info(cache_dir: str | None = None) -> dict[str, Any]:
    """Everything ``genodiff info`` reports, as a JSON-serialisable dict."""
    devices: dict[str, Any] = {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        devices["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    devices["mps"] = bool(mps is not None and mps.is_available())
    folder = cache_dir or str(default_cache_dir())
    return {
        "genodiff": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": devices,
        "kernels": available_kernels(),
        "scan_backends": scan_backends_info(),
        "cache_dir": folder,
        "datasets": dataset_status(folder),
    }


def format_info(info: dict[str, Any]) -> str:
    lines = [f"genodiff {info['genodiff']} (python {info['python']}, {info['platform']})", "", "packages:"]
    for name, version in info["packages"].items():
        lines.append(f"  {name:<14} {version or 'not installed'}")
    devices = info["devices"]
    lines += ["", "devices:", f"  cpu threads    {devices['cpu_threads']}"]
    cuda = ", ".join(devices.get("cuda_devices", [])) if devices["cuda"] else "not available"
    lines += [f"  cuda           {cuda}", f"  mps            {'available' if devices['mps'] else 'not available'}"]
    lines += ["", "kernels:"]
    for name, usable in info["kernels"].items():
        state = usable if isinstance(usable, str) else ("usable" if usable else "not usable")
        lines.append(f"  {name:<18} {state}")
    scan = info["scan_backends"]
    usable = ", ".join(name for name, ok in scan["usable"].items() if ok)
    lines += ["", "selective scan backends (ops.scan_backend):", f"  setting        {scan['setting']}",
              f"  usable here    {usable}", f"  auto on CPU    {scan['auto_cpu']}",
              f"  auto on CUDA   {scan['auto_cuda']}" + ("" if devices["cuda"] else " (if there were a CUDA device)")]
    lines += ["", f"data cache: {info['cache_dir']}"]
    for row in info["datasets"]:
        lines.append(f"  {row.get('name', '?'):<18} {row.get('state', '')}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, Any]:
    info = collect_info(cfg.get("cache_dir"))
    print(json.dumps(info, indent=2) if cfg.get("json") else format_info(info))
    return info
