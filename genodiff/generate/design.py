"""Guided design: a loaded model, a class label and a guidance scale -> the denoiser the samplers run.

``guided_denoiser(model, GuidanceConfig(...))`` returns a :class:`GuidedDenoiser` (the denoiser, what it does
for provenance, and the classifier-guidance counters). The label vocabulary is the ``condition`` block of the
export's ``genodiff.json`` (class names in id order and the null label, written by the training job on
labelled data) -- or the ``classifier`` block of a noise-aware classifier's export for classifier guidance.
Labels are given by name (``promoter``) or id (``1``). The guidance math is in
:mod:`genodiff.diffusion.guidance` (convention: scale ``w >= 0``, exponent ``1 + w``; ``w = 0`` is the
conditional model).

What each setting means:

* no label, ``scale = 0``, no classifier: the model as it is (a conditional model gets the null label:
  its unconditional half);
* ``label``: classifier-free guidance of a class-conditional model (``w = 0``: the conditional sampler, bit for
  bit);
* ``label`` + ``classifier``: classifier guidance of the model's unconditional prediction by the classifier's
  ``p(y | x_t)`` (``mode``: exact re-weighting of every candidate token, first-order approximation, or ``auto``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from genodiff.diffusion.guidance import GUIDANCE_MODES, ClassifierFreeGuidance, ClassifierGuidance
from genodiff.errors import InputError
from genodiff.interop.export import WEIGHTS_NAME, load_export, read_spec, resolve_export, weights_digest

__all__ = ["GuidanceConfig", "GuidedDenoiser", "guided_denoiser", "resolve_label", "label_classes"]


@dataclass
class GuidanceConfig:
    """``label``: class name or id (None: unconditional); ``scale``: ``w >= 0``; ``classifier``: a noise-aware
    classifier export or run folder (classifier guidance); ``mode``: ``exact`` | ``first_order`` | ``auto``;
    ``max_exact_candidates``: the ``auto`` switch; ``batch_size``: classifier inputs per forward pass."""

    label: Any = None
    scale: float = 0.0
    classifier: str | None = None
    mode: str = "auto"
    max_exact_candidates: int = 4096
    batch_size: int = 256

    def __post_init__(self):
        try:
            self.scale = float(self.scale)
        except (TypeError, ValueError):
            raise InputError(f"guidance.scale: must be a number >= 0, got {self.scale!r}") from None
        if not 0.0 <= self.scale < float("inf"):
            raise InputError(f"guidance.scale: must be a finite number >= 0, got {self.scale}")
        if self.mode not in GUIDANCE_MODES:
            raise InputError(f"guidance.mode: '{self.mode}' is not one of {', '.join(GUIDANCE_MODES)}")
        if int(self.batch_size) < 1 or int(self.max_exact_candidates) < 0:
            raise InputError("guidance.batch_size must be >= 1 and guidance.max_exact_candidates >= 0")
        if self.label is None and (self.scale or self.classifier):
            raise InputError("condition.label: required with guidance.scale > 0 or guidance.classifier "
                             "(the class to guide towards)")


@dataclass
class GuidedDenoiser:
    """``denoiser``: ``(x_t, t) -> logits`` for the samplers; ``info``: JSON-ready description (kind, label,
    scale, classifier); ``provenance``: the FASTA header fields; ``guidance``: the guidance object (None when
    unguided), whose ``stats`` count classifier evaluations."""

    denoiser: Callable
    info: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    guidance: Any = None

    def summary(self) -> dict:
        stats = getattr(self.guidance, "stats", None)
        return {**self.info, **({"classifier_stats": stats.as_dict()} if stats is not None else {})}


def label_classes(spec: dict, key: str = "condition") -> list[str] | None:
    """Class names (id order) of an export spec's ``condition`` (or ``classifier``) block, or None."""
    block = spec.get(key)
    if not isinstance(block, dict) or not block.get("classes"):
        return None
    return [str(c) for c in block["classes"]]


def resolve_label(label: Any, classes: list[str], where: str) -> int:
    """Class id of ``label`` (a class name, or an id ``0..C-1``); an unknown label is one error line listing
    the known classes."""
    text = str(label).strip()
    if text in classes:
        return classes.index(text)
    if text.lstrip("+-").isdigit() and 0 <= int(text) < len(classes):
        return int(text)
    known = ", ".join(f"{c} ({i})" for i, c in enumerate(classes))
    raise InputError(f"condition.label: '{text}' is not a class of {where}; known: {known}")


def classifier_classes(path: str, key: str = "guidance.classifier") -> list[str]:
    """Class names of the noise-aware classifier export at ``path`` (read from its spec, no weights loaded);
    anything else is one InputError line naming ``key``."""
    folder = resolve_export(path)
    spec = read_spec(folder)
    classes = label_classes(spec, "classifier")
    if classes is None or spec["model"].get("name") != "sequence_classifier":
        raise InputError(f"{key}: {folder} is not a noise-aware classifier export "
                         "(train one with genodiff finetune noisy_classifier_<task>)")
    return classes


def _load_classifier(path: str, device: str):
    classes = classifier_classes(path)
    folder = resolve_export(path)
    exported = load_export(folder, map_location=device)
    weights = folder / WEIGHTS_NAME
    return exported.model, classes, str(folder), weights_digest(weights) if weights.is_file() else "unknown"


def guided_denoiser(model, config: GuidanceConfig) -> GuidedDenoiser:
    """The denoiser to sample with for ``model`` (a :class:`~genodiff.interop.export.LoadedModel`) under
    ``config`` (module docstring). Errors (one line): a label on an unconditional model (without a classifier),
    an unknown label, a classifier that is not one, a classifier given as the model."""
    if "classifier" in model.spec:
        raise InputError(f"checkpoint: {model.checkpoint} is a noise-aware classifier, not a generator; pass it as "
                         "guidance.classifier=<it> with an MDLM checkpoint")
    if config.label is None:
        return GuidedDenoiser(model.denoiser)
    vocab = model.vocab
    if config.classifier:
        classifier, classes, where, digest = _load_classifier(config.classifier, model.device)
        y = resolve_label(config.label, classes, f"the classifier {where}")

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return torch.log_softmax(classifier(x).double(), -1)[:, y]

        def onehot_log_prob(onehot: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(classifier(None, onehot=onehot).float(), -1)[:, y]

        guidance = ClassifierGuidance(model.denoiser, vocab, log_prob, config.scale, mode=config.mode,
                                      onehot_log_prob=onehot_log_prob, batch_size=int(config.batch_size),
                                      max_exact_candidates=int(config.max_exact_candidates))
        info = {"kind": "classifier", "label": classes[y], "label_id": y, "scale": config.scale,
                "classifier": where, "classifier_digest": digest, "mode": config.mode}
        provenance = {"label": classes[y], "guidance": "classifier", "scale": config.scale,
                      "classifier": digest, "guidance_mode": config.mode}
        return GuidedDenoiser(guidance, info, provenance, guidance)
    classes = label_classes(model.spec)
    if classes is None:
        raise InputError(f"condition.label: the model {model.checkpoint} is unconditional (trained without class "
                         "labels); train one with genodiff finetune conditional_<task>, or add guidance.classifier")
    y = resolve_label(config.label, classes, f"the model {model.checkpoint}")
    null = int(model.spec["condition"].get("null_label", len(classes)))
    module, size = model.module, vocab.size

    def labelled(x: torch.Tensor, t, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x, time=t, label=labels)[..., :size]

    guidance = ClassifierFreeGuidance(labelled, vocab, y, null, config.scale)
    info = {"kind": "classifier_free", "label": classes[y], "label_id": y, "null_label": null, "scale": config.scale}
    provenance = {"label": classes[y], "guidance": "cfg", "scale": config.scale}
    return GuidedDenoiser(guidance, info, provenance, None)
