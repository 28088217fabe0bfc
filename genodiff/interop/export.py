"""Trained models in and out: genodiff exports, and the one loader every job uses.

An export is a folder with ``model.safetensors`` + ``genodiff.json`` (+ ``objective.safetensors`` for an
objective with learned parameters: Plaid's embeddings and schedule endpoints); ``genodiff.json`` holds everything
needed to rebuild the model and its objective without pickles: ``{"format": "genodiff-export", "version": 1,
"model": {"name": ..., **config}, "objective": {...}, "vocab": {...}, "training": {...}}``. Weights are the
EMA weights when training used EMA.

* :func:`save_export` / :func:`read_spec` / :func:`load_export`: the backbone and its spec.
* :func:`load_model`: a ready-to-use :class:`LoadedModel` (module, denoiser, objective, vocabulary, spec,
  weights digest) from a genodiff export or run folder, ``hf:<owner>/<repo>[@rev]`` or a local Hugging Face
  Caduceus folder. Imported Caduceus checkpoints are paired with the MDLM objective without time
  conditioning (log-linear schedule) and the A/C/G/T vocabulary -- the setting Caduceus + MDLM checkpoints
  are trained with. ``sample``, ``score``, ``evaluate`` and ``benchmark`` all load through it.
* Bundled models: exports shipped inside the package as data, ``genodiff/resources/models/<name>/``
  (``model.safetensors``, ``genodiff.json``, ``MODEL_CARD.md``), located with :mod:`importlib.resources`.
  ``checkpoint`` null (``load_model(None)``, ``resolve_export(None)``) is the default bundled model
  :data:`DEFAULT_MODEL`; ``bundled:<name>`` (or a bare ``<name>`` that is no existing path) names one.
  :func:`bundled_models` lists them. A bundled model's provenance names it: ``LoadedModel.name`` is the
  bundled name and ``LoadedModel.checkpoint`` is ``bundled:<name>``, next to the weights digest as for any
  checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
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
#: learned parameters of the objective, for objectives that have them (Plaid: embeddings, schedule endpoints)
OBJECTIVE_WEIGHTS_NAME = "objective.safetensors"
CARD_NAME = "MODEL_CARD.md"
#: the model ``checkpoint: null`` loads (``genodiff sample`` / ``score`` / ``serve``)
DEFAULT_MODEL = "caduceus-ps-tiny-hg38chr2"
BUNDLED_PREFIX = "bundled:"


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


def save_export(model: torch.nn.Module, spec: dict[str, Any], folder: str | os.PathLike,
                objective: Any = None) -> Path:
    """Write ``folder/{model.safetensors,genodiff.json}`` atomically (temp folder, then rename); with an
    ``objective`` that has learned parameters (an ``nn.Module`` with a state, Plaid) also ``objective.safetensors``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(_unique_state_dict(model), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if isinstance(objective, torch.nn.Module) and objective.state_dict():
            save_file(_unique_state_dict(objective), str(tmp / OBJECTIVE_WEIGHTS_NAME), metadata={"format": "pt"})
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


def load_objective_state(objective: Any, folder: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """``objective`` with its learned parameters from ``folder/objective.safetensors`` (strict), on ``device``, in
    eval mode without gradients; unchanged for objectives without learned parameters (all but Plaid)."""
    if not isinstance(objective, torch.nn.Module) or not objective.state_dict():
        return objective
    path = Path(folder) / OBJECTIVE_WEIGHTS_NAME
    if not path.is_file():
        raise InputError(f"{folder}: objective '{type(objective).__name__}' has learned parameters but the export "
                         f"has no {OBJECTIVE_WEIGHTS_NAME}")
    try:
        objective.load_state_dict(load_file(str(path), device=str(device)))
    except RuntimeError as exc:
        raise InputError(f"{path}: does not match the objective ({str(exc).splitlines()[0]})") from None
    return objective.to(device).eval().requires_grad_(False)


def bundled_models_dir() -> Path:
    """The folder of the models shipped with genodiff: ``genodiff/resources/models/`` (package data)."""
    return Path(str(resources.files("genodiff").joinpath("resources").joinpath("models")))


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside the package: ``path`` holds ``model.safetensors`` + ``genodiff.json``
    (+ ``MODEL_CARD.md``); ``name`` is the folder name."""

    name: str
    path: Path

    @property
    def card(self) -> Path | None:
        card = self.path / CARD_NAME
        return card if card.is_file() else None


def bundled_models() -> list[BundledModel]:
    """The bundled models (folders of :func:`bundled_models_dir` holding both export files; hidden staging
    folders skipped), sorted by name."""
    root = bundled_models_dir()
    if not root.is_dir():
        return []
    return [BundledModel(p.name, p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_NAME).is_file()
            and (p / WEIGHTS_NAME).is_file()]


def bundled_model(name: str | None = None) -> BundledModel:
    """The bundled model ``name`` (None: :data:`DEFAULT_MODEL`); one :class:`InputError` line when absent."""
    models = {m.name: m for m in bundled_models()}
    wanted = name or DEFAULT_MODEL
    if wanted in models:
        return models[wanted]
    known = ", ".join(models) or "none"
    if name is None:
        raise InputError(f"checkpoint: not given and the default model '{DEFAULT_MODEL}' is not bundled with this "
                         f"installation (bundled: {known}, in {bundled_models_dir()}); "
                         "pass checkpoint=<run folder|export folder|hf:owner/repo>")
    raise InputError(f"checkpoint: no bundled model '{name}' (bundled: {known}; genodiff models lists them)")


def is_bundled(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is one of the bundled model folders."""
    root = bundled_models_dir()
    folder = Path(folder)
    return folder.parent.resolve() == root.resolve() and folder.name in {m.name for m in bundled_models()}


def resolve_export(path: str | os.PathLike | None) -> Path:
    """An export folder, a run folder containing ``export/``, ``bundled:<name>`` or a bare bundled name that
    is no existing path, or None / empty: the default bundled model (:data:`DEFAULT_MODEL`)."""
    if path is None or str(path) == "":
        return bundled_model().path
    text = str(path)
    if text.startswith(BUNDLED_PREFIX):
        return bundled_model(text[len(BUNDLED_PREFIX):]).path
    path = Path(text).expanduser()
    for candidate in (path, path / "export"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    if not path.exists() and text in {m.name for m in bundled_models()}:
        return bundled_model(text).path
    raise InputError(f"checkpoints: {path} is not a genodiff export or run folder (no {CONFIG_NAME})")


def parameter_count(spec: dict[str, Any]) -> int:
    """Number of parameters (shared ones once; buffers not counted) of the backbone ``spec['model']`` describes,
    built on the ``meta`` device (no memory, no weights read)."""
    model_spec = dict(spec["model"])
    with torch.device("meta"):
        model = build_model(model_spec.pop("name"), **model_spec)
    return sum(p.numel() for p in model.parameters())


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
    """Load ``checkpoint`` (see the module docstring; None: the default bundled model) on ``device``
    (``auto``: CUDA if available)."""
    device = resolve_device(device)
    spec_str = "" if checkpoint is None else str(checkpoint)
    path = Path(spec_str).expanduser()
    if spec_str.startswith("hf:") or (spec_str and path.is_dir() and _is_hf_folder(path)):
        return _load_hf(spec_str, device)
    folder = resolve_export(spec_str)
    exported = load_export(folder, map_location=device)
    spec = exported.spec
    vocab = make_vocab(spec["vocab"])
    objective = load_objective_state(build_objective(spec["objective"], vocab), folder, device)
    weights = folder / WEIGHTS_NAME
    digest = weights_digest(weights) if weights.is_file() else "unknown"
    name = f"{spec['model'].get('name', 'model')}-{spec['objective'].get('name', 'obj')}"
    checkpoint_name = str(folder)
    if is_bundled(folder):
        name, checkpoint_name = folder.name, BUNDLED_PREFIX + folder.name
    return LoadedModel(exported.model, objective, vocab, spec, name.replace(" ", "_"), checkpoint_name, digest,
                       device)


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
