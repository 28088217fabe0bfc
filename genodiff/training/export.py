"""Exported models: a folder with ``model.safetensors`` + ``genodiff.json``.

``genodiff.json`` holds everything needed to rebuild the model and its objective without pickles:
``{"format": "genodiff-export", "version": 1, "model": {"name": ..., **config}, "objective": {...},
"vocab": {...}, "training": {...}}``. ``sample``, ``score``, ``evaluate`` and ``benchmark`` load it with
:func:`load_export`. Weights are the EMA weights when training used EMA.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from genodiff.errors import InputError

FORMAT = "genodiff-export"
CONFIG_NAME = "genodiff.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ExportedModel:
    model: torch.nn.Module
    spec: dict[str, Any]
    path: Path


def _unique_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tied (shared-storage) duplicates dropped; safetensors refuses shared tensors."""
    seen: dict[tuple, str] = {}
    out = {}
    for key, tensor in model.state_dict().items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if ident in seen:
            continue
        seen[ident] = key
        out[key] = tensor.detach().contiguous().cpu()
    return out


def save_export(model: torch.nn.Module, spec: dict[str, Any], folder: str | os.PathLike) -> Path:
    """Write ``folder/{model.safetensors,genodiff.json}`` atomically (temp folder, then rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(_unique_state_dict(model), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps({"format": FORMAT, "version": 1, **spec}, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_spec(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"{folder}: not a genodiff export (no {CONFIG_NAME})")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if spec.get("format") != FORMAT:
        raise InputError(f"{path}: key 'format' must be '{FORMAT}'")
    for key in ("model", "objective", "vocab"):
        if key not in spec:
            raise InputError(f"{path}: missing key '{key}'")
    return spec


def load_export(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> ExportedModel:
    """Rebuild the backbone from ``genodiff.json`` and load ``model.safetensors`` (strict, re-tying shared weights)."""
    from genodiff.models.registry import build_model

    folder = Path(folder)
    spec = read_spec(folder)
    model_spec = dict(spec["model"])
    model = build_model(model_spec.pop("name"), **model_spec)
    weights = load_file(str(folder / WEIGHTS_NAME), device=str(map_location))
    expected = _unique_state_dict(model)
    unknown = sorted(set(weights) - set(model.state_dict()))
    missing = sorted(set(expected) - set(weights))
    if unknown or missing:
        raise InputError(f"{folder / WEIGHTS_NAME}: weights do not match the model "
                         f"(unknown keys {unknown[:3]}, missing keys {missing[:3]})")
    model.load_state_dict(weights, strict=False)  # tied duplicates are restored through the shared parameter
    model.to(map_location).eval()
    return ExportedModel(model=model, spec=spec, path=folder)
