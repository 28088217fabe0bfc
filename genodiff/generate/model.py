"""Load a model for generation or scoring: a genodiff export / run folder, or an imported Hugging Face Caduceus.

``checkpoint`` values:

* a genodiff export folder (``model.safetensors`` + ``genodiff.json``) or a run folder with ``export/``:
  loaded with :func:`genodiff.tasks.evaluate.load_for_scoring` (backbone, objective and vocabulary from
  ``genodiff.json``);
* ``hf:<owner>/<repo>[@rev]`` or a local Hugging Face Caduceus folder (``config.json`` + weights): loaded
  with :func:`genodiff.interop.hf_caduceus.load_pretrained` and paired with the MDLM objective without
  time conditioning (log-linear schedule) and the A/C/G/T vocabulary -- the setting Caduceus + MDLM
  checkpoints are trained with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from genodiff.errors import InputError

__all__ = ["LoadedModel", "load_model", "resolve_device", "file_digest"]


@dataclass
class LoadedModel:
    """A ready-to-use denoiser.

    denoiser: ``(x_t LongTensor[B, L], t FloatTensor[B] | None) -> logits FloatTensor[B, L, V]`` (V = vocab.size).
    objective: the diffusion objective (MDLM for imported Caduceus checkpoints).
    name: short model description for provenance (no spaces). checkpoint: the resolved folder or hf spec.
    digest: ``sha256:<first 16 hex>`` of the weights file (or ``unknown``).
    module: the underlying ``torch.nn.Module``.
    """

    denoiser: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    objective: Any
    vocab: Any
    spec: dict
    name: str
    checkpoint: str
    digest: str
    module: torch.nn.Module | None = None
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    @property
    def time_conditioning(self) -> bool:
        return bool(getattr(getattr(self.objective, "config", None), "time_conditioning", False))

    @property
    def is_diffusion(self) -> bool:
        from genodiff.diffusion.objectives import MDLMObjective

        return isinstance(self.objective, MDLMObjective)


def resolve_device(device: str | None) -> str:
    """``auto``/None: ``cuda`` when available, else ``cpu``; anything else is returned unchanged."""
    if device in (None, "auto", ""):
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device}: CUDA is not available on this machine (use device=auto or cpu)")
    return device


def file_digest(path: str | Path, length: int = 16) -> str:
    """``sha256:<hex prefix>`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()[:length]


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and not (path / "genodiff.json").is_file()


def load_model(checkpoint: str | Path | None, device: str | None = "auto") -> LoadedModel:
    """Load ``checkpoint`` (see module docstring) on ``device`` (``auto``: CUDA if available)."""
    if checkpoint in (None, ""):
        raise InputError("checkpoint: required (a run folder, an export folder, hf:<owner>/<repo> "
                         "or a Hugging Face Caduceus folder)")
    device = resolve_device(device)
    spec_str = str(checkpoint)
    path = Path(spec_str).expanduser()
    if spec_str.startswith("hf:") or (path.is_dir() and _is_hf_folder(path)):
        return _load_hf(spec_str, device)
    from genodiff.tasks.evaluate import load_for_scoring, resolve_export

    folder = resolve_export(path)
    denoiser, objective, vocab, spec = load_for_scoring(folder, device)
    weights = folder / "model.safetensors"
    digest = file_digest(weights) if weights.is_file() else "unknown"
    mspec = spec.get("model", {})
    name = f"{mspec.get('name', 'model')}-{spec.get('objective', {}).get('name', 'obj')}"
    import inspect

    module = getattr(inspect.unwrap(denoiser), "__closure__", None)
    model_obj = None
    if module:
        for cell in module:
            if isinstance(cell.cell_contents, torch.nn.Module):
                model_obj = cell.cell_contents
    return LoadedModel(denoiser, objective, vocab, spec, name.replace(" ", "_"), str(folder), digest, model_obj, device)


def _load_hf(spec_str: str, device: str) -> LoadedModel:
    from genodiff.diffusion.objectives import MDLMObjective
    from genodiff.diffusion.vocab import DiffusionVocab
    from genodiff.interop.hf_caduceus import load_pretrained

    model, config = load_pretrained(spec_str)
    model = model.to(device).eval()
    vocab = DiffusionVocab.dna()
    objective = MDLMObjective({"time_conditioning": False, "schedule": {"name": "loglinear"}, "sampling_eps": 0.0},
                              vocab)

    @torch.no_grad()
    def denoiser(x_t: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        return model(x_t)[..., : vocab.size]

    folder = Path(spec_str) if not spec_str.startswith("hf:") else None
    digest = "unknown"
    if folder is not None:
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (folder / name).is_file():
                digest = file_digest(folder / name)
                break
    kind = "caduceus-ps" if config.rcps else "caduceus-ph"
    spec = {"model": {"name": "caduceus", "hf": spec_str, "rcps": bool(config.rcps), "d_model": config.d_model,
                      "n_layer": config.n_layer},
            "objective": {"name": "mdlm", "time_conditioning": False, "schedule": {"name": "loglinear"}},
            "vocab": "dna"}
    return LoadedModel(denoiser, objective, vocab, spec, f"{kind}-mdlm-imported", spec_str, digest, model, device)
