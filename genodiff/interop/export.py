"""Trained models in and out: genodiff exports, and the one loader every job uses.

An export is a folder with ``model.safetensors`` + ``genodiff.json``; ``genodiff.json`` holds everything
needed to rebuild the model and its objective without pickles: ``{"format": "genodiff-export", "version": 1,
"model": {"name": ..., **config}, "objective": {...}, "vocab": {...}, "training": {...}}``. Weights are the
EMA weights when training used EMA.

* :func:`save_export` / :func:`read_spec` / :func:`load_export`: the backbone and its spec.
* :func:`load_model`: a ready-to-use :class:`LoadedModel` (module, denoiser, objective, vocabulary, spec,
  weights digest) from a genodiff export or run folder, ``hf:<owner>/<repo>[@rev]`` or a local Hugging Face
  Caduceus folder. Imported Caduceus checkpoints are paired with the MDLM objective without time
  conditioning (log-linear schedule) and the A/C/G/T vocabulary -- the setting Caduceus + MDLM checkpoints
  are trained with. ``sample``, ``score``, ``evaluate`` and ``benchmark`` all load through it.
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

from genodiff.data.files import file_digest, install_folder, read_json
from genodiff.diffusion.build import build_objective, make_vocab
from genodiff.diffusion.objectives import MDLMObjective
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError
from genodiff.interop.hf_caduceus import load_pretrained
from genodiff.models.registry import build_model

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
        install_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_spec(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"{folder}: not a genodiff export (no {CONFIG_NAME})")
    spec = read_json(path)
    if spec.get("format") != FORMAT:
        raise InputError(f"{path}: key 'format' must be '{FORMAT}'")
    for key in ("model", "objective", "vocab"):
        if key not in spec:
            raise InputError(f"{path}: missing key '{key}'")
    return spec


def load_export(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> ExportedModel:
    """Rebuild the backbone from ``genodiff.json`` and load ``model.safetensors`` (strict, re-tying shared weights)."""
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


def resolve_export(path: str | os.PathLike) -> Path:
    """An export folder, or a run folder containing ``export/``."""
    path = Path(str(path)).expanduser()
    for candidate in (path, path / "export"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise InputError(f"checkpoints: {path} is not a genodiff export or run folder (no {CONFIG_NAME})")


def resolve_device(device: str | None) -> str:
    """``auto``/None: ``cuda`` when available, else ``cpu``; anything else is checked and returned unchanged."""
    if device in (None, "auto", ""):
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device}: CUDA is not available on this machine (use device=auto or cpu)")
    return device


def weights_digest(path: Path) -> str:
    """``sha256:<first 16 hex>`` of a weights file, for provenance lines."""
    return "sha256:" + file_digest(path, "sha256")[:16]


@dataclass
class LoadedModel:
    """A trained model ready to generate or score.

    module: the backbone (``torch.nn.Module``, eval mode, on ``device``).
    denoiser: ``(x_t LongTensor[B, L], t FloatTensor[B] | None) -> logits FloatTensor[B, L, V]`` (V = vocab.size),
        run without gradients.
    objective: the diffusion objective (MDLM for imported Caduceus checkpoints).
    name: short model description for provenance (no spaces). checkpoint: the resolved folder or hf spec.
    digest: ``sha256:<first 16 hex>`` of the weights file (or ``unknown``).
    """

    module: torch.nn.Module
    objective: Any
    vocab: DiffusionVocab
    spec: dict
    name: str
    checkpoint: str
    digest: str
    device: str = "cpu"
    #: the backbone takes the diffusion time (``module(x_t, time=t)``); imported Caduceus checkpoints do not
    takes_time: bool = True

    @torch.no_grad()
    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        logits = self.module(x_t, time=t) if self.takes_time else self.module(x_t)
        return logits[..., : self.vocab.size]

    @property
    def time_conditioning(self) -> bool:
        return bool(getattr(getattr(self.objective, "config", None), "time_conditioning", False))

    @property
    def is_diffusion(self) -> bool:
        return isinstance(self.objective, MDLMObjective)


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and not (path / CONFIG_NAME).is_file()


def load_model(checkpoint: str | os.PathLike | None, device: str | None = "auto") -> LoadedModel:
    """Load ``checkpoint`` (see the module docstring) on ``device`` (``auto``: CUDA if available)."""
    if checkpoint in (None, ""):
        raise InputError("checkpoint: required (a run folder, an export folder, hf:<owner>/<repo> "
                         "or a Hugging Face Caduceus folder)")
    device = resolve_device(device)
    spec_str = str(checkpoint)
    path = Path(spec_str).expanduser()
    if spec_str.startswith("hf:") or (path.is_dir() and _is_hf_folder(path)):
        return _load_hf(spec_str, device)
    folder = resolve_export(path)
    exported = load_export(folder, map_location=device)
    spec = exported.spec
    vocab = make_vocab(spec["vocab"])
    objective = build_objective(spec["objective"], vocab)
    weights = folder / WEIGHTS_NAME
    digest = weights_digest(weights) if weights.is_file() else "unknown"
    name = f"{spec['model'].get('name', 'model')}-{spec['objective'].get('name', 'obj')}"
    return LoadedModel(exported.model, objective, vocab, spec, name.replace(" ", "_"), str(folder), digest, device)


def _load_hf(spec_str: str, device: str) -> LoadedModel:
    model, config = load_pretrained(spec_str)
    model = model.to(device).eval()
    vocab = DiffusionVocab.dna()
    objective = MDLMObjective({"time_conditioning": False, "schedule": {"name": "loglinear"}, "sampling_eps": 0.0},
                              vocab)
    folder = Path(spec_str) if not spec_str.startswith("hf:") else None
    digest = "unknown"
    if folder is not None:
        for name in (WEIGHTS_NAME, "pytorch_model.bin"):
            if (folder / name).is_file():
                digest = weights_digest(folder / name)
                break
    kind = "caduceus-ps" if config.rcps else "caduceus-ph"
    spec = {"model": {"name": "caduceus", "hf": spec_str, "rcps": bool(config.rcps), "d_model": config.d_model,
                      "n_layer": config.n_layer},
            "objective": {"name": "mdlm", "time_conditioning": False, "schedule": {"name": "loglinear"}},
            "vocab": "dna"}
    return LoadedModel(model, objective, vocab, spec, f"{kind}-mdlm-imported", spec_str, digest, device,
                       takes_time=False)
