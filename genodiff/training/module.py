"""One LightningModule around (objective, backbone) for MDLM, AR, SEDD, D3PM and MLM training.

The module owns no diffusion math: the objective (``genodiff.diffusion``) turns a batch of clean tokens
into per-sequence NELBOs, the backbone (``genodiff.models``) is the denoiser. What lives here:

* deterministic noise: each micro-batch draws its times and masks from a generator seeded by
  ``(seed, micro-batch index, rank)``, so a resumed run repeats an uninterrupted one exactly;
* time sampling stratified over the whole global batch (all devices and accumulation steps);
* a non-finite guard (the step is refused before any weight changes; the last good checkpoint stays);
* EMA weights, swapped in for validation, testing and export;
* objectives with learned parameters (Plaid's embeddings and schedule endpoints, an ``nn.Module``) are trained,
  averaged, checkpointed and exported with the backbone (:meth:`DiffusionLitModule.trained_modules`);
* float64 aggregation of validation metrics: NELBO (nats/token), bits per token and a perplexity bound. The
  validation NELBO is one draw per sequence of the likelihood estimator of ``genodiff evaluate``
  (:func:`genodiff.diffusion.likelihood.estimate_nelbo`, ``num_masked`` for MDLM without time conditioning),
  not the training integrand: that one is truncated at ``sampling_eps`` and, with ``alpha(1) > 0``, misses the
  prior mass, so it is not a bound; this one is an upper bound in expectation on ``-log p`` of the model as
  sampled, for every schedule. (MLM, which has no likelihood, logs its masked cross-entropy.)
* class labels: batches with ``labels`` (:class:`~genodiff.training.datamodule.LabelledDataModule`) train a
  class-conditional backbone (``model.num_classes > 0``); in training each label is replaced by the null label
  with probability ``label_dropout`` (its own seeded stream), so one model is both conditional and
  unconditional (classifier-free guidance, :mod:`genodiff.diffusion.guidance`). Validation uses the true labels.

:class:`NoisyClassifierLitModule` trains the noise-aware classifier of classifier guidance with the same
machinery: cross-entropy of ``p(y | x_t)`` on inputs masked by the forward process at times drawn like the
objective's.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from genodiff.diffusion.build import build_objective, make_vocab
from genodiff.diffusion.guidance import drop_labels
from genodiff.diffusion.likelihood import default_method, estimate_nelbo
from genodiff.errors import InputError
from genodiff.interop.export import load_export
from genodiff.interop.hf_caduceus import load_pretrained
from genodiff.models.registry import build_model
from genodiff.training.ema import ParameterEMA
from genodiff.training.optim import OptimConfig, build_optimizer

LN2 = math.log(2.0)


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss is NaN or infinite; the run stops before the optimizer step."""


def _pretrained(init: str) -> torch.nn.Module:
    path = Path(str(init)).expanduser()
    if path.is_dir() and (path / "genodiff.json").is_file():
        return load_export(path).model
    model, _config = load_pretrained(str(init))
    return model


_LABEL_PREFIXES = ("backbone.embeddings.label_embeddings", "label_embed")


def _load_into(model: torch.nn.Module, pretrained: torch.nn.Module, init: str) -> None:
    """Load ``pretrained``'s weights into ``model``; only the label embedding may be missing (it keeps its
    initialisation) or left over (an unconditional model built from a conditional one drops it)."""
    missing, unexpected = model.load_state_dict(pretrained.state_dict(), strict=False)
    missing = [k for k in missing if not k.startswith(_LABEL_PREFIXES)]
    unexpected = [k for k in unexpected if not k.startswith(_LABEL_PREFIXES)]
    if missing or unexpected:
        raise InputError(f"init={init}: weights do not fit the model (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]})")
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def build_backbone(spec: dict, init: str | None = None) -> torch.nn.Module:
    """Backbone from ``{"name": registry name, **config}``; ``init`` loads pretrained weights:
    ``hf:<repo>`` or a Hugging Face Caduceus folder (``config.json``), or a genodiff export.

    With ``num_classes`` in ``spec`` and an ``init``, the pretrained backbone gets a (zero-initialised) label
    embedding: the model is rebuilt from the pretrained config plus ``num_classes`` and the pretrained weights
    are loaded into it (class-conditional fine-tuning of an unconditional model)."""
    spec = dict(spec)
    name = spec.pop("name")
    if init:
        model = _pretrained(init)
        num_classes = int(spec.get("num_classes") or 0)
        config = getattr(model, "config", None)
        if num_classes and int(getattr(config, "num_classes", 0) or 0) != num_classes:
            if config is None or not hasattr(config, "num_classes"):
                raise InputError(f"init={init}: {type(model).__name__} cannot take class labels")
            conditional = type(model)(type(config)(**{**vars(config), "num_classes": num_classes}))
            _load_into(conditional, model, init)
            return conditional
        return model
    try:
        return build_model(name, **spec)
    except (ValueError, TypeError) as exc:
        raise InputError(f"model: {exc}") from None


class DiffusionLitModule(L.LightningModule):
    """``loss = objective.loss(x0, attention_mask, t, denoiser=backbone, generator=...)``.

    Args:
        model: ``{"name": ..., **backbone config}`` (``genodiff.models.registry``).
        objective: ``{"name": "mdlm"|"ar"|"sedd"|"d3pm"|"mlm", **objective config}``.
        optim: :class:`OptimConfig` fields.
        vocab: see :func:`make_vocab`.
        ema_decay: EMA decay, or None/0 for no EMA.
        seed: seed of the noise generators.
        init: optional pretrained weights (see :func:`build_backbone`).
        label_dropout: probability that a training label becomes the null label (batches with ``labels``).
    """

    def __init__(self, model: dict, objective: dict, optim: dict | None = None, vocab: Any = "dna",
                 ema_decay: float | None = 0.9999, seed: int = 0, init: str | None = None,
                 label_dropout: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = self._build_model(model, init)
        self.vocab = make_vocab(vocab)
        self.objective = build_objective(objective, self.vocab)
        self.optim_config = OptimConfig(**dict(optim or {}))
        self.ema = ParameterEMA(self.trained_modules(), ema_decay) if ema_decay else None
        self._ema_backup: dict[str, torch.Tensor] | None = None
        self._sample_t_takes_global = "global_batch_size" in inspect.signature(
            getattr(self.objective, "sample_t", lambda *a, **k: None)).parameters
        self._eval_sums: dict[str, torch.Tensor] = {}

    def _build_model(self, model: dict, init: str | None) -> torch.nn.Module:
        return build_backbone(model, init)

    @property
    def num_classes(self) -> int:
        """Class labels of a conditional backbone (0: unconditional); the null label is ``num_classes``."""
        return int(getattr(self.backbone, "num_classes", 0) or 0)

    def trained_modules(self) -> torch.nn.Module:
        """What the optimizer trains and EMA averages: the backbone, or, when the objective has learned parameters
        (Plaid: token embeddings, schedule endpoints), ``{"backbone": ..., "objective": ...}`` (unregistered view)."""
        objective = self.objective
        if isinstance(objective, torch.nn.Module) and any(p.requires_grad for p in objective.parameters()):
            return torch.nn.ModuleDict({"backbone": self.backbone, "objective": objective})
        return self.backbone

    # ------------------------------------------------------------------ denoiser
    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor | None, label: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone logits cut to the diffusion vocabulary (published Caduceus pads V=12 to 16); ``label``
        (LongTensor[B]) for a class-conditional backbone."""
        if label is None:
            return self.backbone(x_t, time=t)[..., : self.vocab.size]
        return self.backbone(x_t, time=t, label=label)[..., : self.vocab.size]

    def _denoiser_for(self, batch: dict):
        """The denoiser of this batch: conditioned on the batch's ``labels`` when it has them."""
        labels = batch.get("labels")
        if labels is None or not self.num_classes:
            if labels is not None:
                raise InputError("data: the batches have class labels but model.num_classes is 0")
            return self.denoiser
        return functools.partial(self.denoiser, label=labels)

    def forward(self, input_ids: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(input_ids, time)

    # ------------------------------------------------------------------ noise
    def _generator(self, micro_batch: int, rank: int, device: torch.device, stream: int = 0) -> torch.Generator:
        seed = (int(self.hparams.seed) * 1_000_003 + micro_batch * 8191 + rank * 131 + stream) % (2**63 - 1)
        return torch.Generator(device=device).manual_seed(seed)

    def _sample_t(self, x0: torch.Tensor, generator: torch.Generator, global_batch: int | None, offset: int):
        if global_batch is not None and self._sample_t_takes_global:
            return self.objective.sample_t(x0.shape[0], generator=generator, device=x0.device,
                                           global_batch_size=global_batch, offset=offset)
        return None

    def _objective_loss(self, batch: dict, generator: torch.Generator, global_batch: int | None = None,
                        offset: int = 0):
        x0 = batch["input_ids"]
        attention_mask = batch.get("attention_mask")
        t = self._sample_t(x0, generator, global_batch, offset)
        return self.objective.loss(x0, attention_mask, t, denoiser=self._denoiser_for(batch), generator=generator)

    def _training_batch(self, batch: dict, micro_batch: int, rank: int) -> dict:
        """The batch with label dropout applied to its labels (seeded by the micro-batch); unchanged without
        labels or dropout."""
        labels = batch.get("labels")
        p = float(self.hparams.get("label_dropout", 0.0) or 0.0)
        if labels is None or not self.num_classes or p == 0.0:
            return batch
        generator = self._generator(micro_batch, rank, labels.device, stream=1)
        return {**batch, "labels": drop_labels(labels, self.num_classes, p, generator)}

    @property
    def reports_likelihood(self) -> bool:
        """Whether the loss is a likelihood bound (logged as bits per token and perplexity bound)."""
        return bool(getattr(self.objective, "is_likelihood", True))

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        accumulate = self.trainer.accumulate_grad_batches
        world, rank = self.trainer.world_size, self.global_rank
        within = batch_idx % accumulate
        micro_batch = self.global_step * accumulate + within
        local = batch["input_ids"].shape[0]
        generator = self._generator(micro_batch, rank, batch["input_ids"].device)
        batch = self._training_batch(batch, micro_batch, rank)
        out = self._objective_loss(batch, generator, global_batch=local * world * accumulate,
                                   offset=(within * world + rank) * local)
        loss = out.loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step} (micro-batch {micro_batch}); "
                "the run stopped before updating the weights and the last checkpoint is intact"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=local)
        if self.reports_likelihood:
            self.log("train/bits_per_token", loss / LN2, batch_size=local)
        return loss

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.trained_modules())

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.trained_modules(), self.optim_config)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ evaluation
    def swap_in_ema(self) -> None:
        if self.ema is not None and self._ema_backup is None:
            self._ema_backup = self.ema.swap_in(self.trained_modules())

    def swap_out_ema(self) -> None:
        if self._ema_backup is not None:
            self.ema.restore(self.trained_modules(), self._ema_backup)
            self._ema_backup = None

    def _eval_start(self) -> None:
        self.swap_in_ema()
        self._eval_sums = {"nelbo": torch.zeros((), dtype=torch.float64, device=self.device),
                           "tokens": torch.zeros((), dtype=torch.float64, device=self.device)}

    def _eval_step(self, batch: dict, batch_idx: int) -> None:
        # a fixed generator per batch makes validation curves comparable across steps
        generator = self._generator(batch_idx, self.global_rank, batch["input_ids"].device, stream=7)
        if self.reports_likelihood:  # the bound, one draw per sequence (module docstring)
            est = estimate_nelbo(self.objective, self._denoiser_for(batch), batch["input_ids"],
                                 batch.get("attention_mask"),
                                 num_samples=1, method=default_method(self.objective), generator=generator)
            nelbo, tokens = est.nelbo, est.num_tokens
        else:
            out = self._objective_loss(batch, generator)
            nelbo, tokens = out.nelbo_per_seq, out.num_tokens
        self._eval_sums["nelbo"] += nelbo.double().sum()
        self._eval_sums["tokens"] += tokens.double().sum()

    def _eval_end(self, prefix: str) -> None:
        sums = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._eval_sums.items()}
        nats = (sums["nelbo"] / sums["tokens"].clamp(min=1)).item()
        self.log(f"{prefix}/nelbo", nats, prog_bar=True, sync_dist=False)
        if "correct" in sums:
            self.log(f"{prefix}/accuracy", (sums["correct"] / sums["tokens"].clamp(min=1)).item(), sync_dist=False)
        if self.reports_likelihood:
            self.log(f"{prefix}/bits_per_token", nats / LN2, sync_dist=False)
            self.log(f"{prefix}/perplexity_bound", math.exp(min(nats, 50.0)), sync_dist=False)
        self.swap_out_ema()

    # validation and test are the same evaluation, logged under their own prefix
    on_validation_epoch_start = on_test_epoch_start = _eval_start
    validation_step = test_step = _eval_step

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None and "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])


# ------------------------------------------------------------------------------------ classifier
@dataclass
class ClassifierOutput:
    """Per-sequence cross-entropy of a noisy classification batch, shaped like an objective's output
    (``nelbo_per_seq``: nats per sequence, ``num_tokens``: 1 per sequence) plus correct predictions."""

    nelbo_per_seq: torch.Tensor
    num_tokens: torch.Tensor
    correct: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.nelbo_per_seq.mean()


class NoisyClassifierLitModule(DiffusionLitModule):
    """The noise-aware classifier ``p(y | x_t)`` of classifier guidance (Nisonoff et al. 2024).

    ``model``: ``{"name": "sequence_classifier", "backbone": {...}, "num_classes": C, ...}``; ``init``: pretrained
    weights for the classifier's backbone (a genodiff export, e.g. the MDLM model itself, or a Hugging Face
    Caduceus). ``objective``: the diffusion objective whose forward process masks the inputs: each sequence is
    masked at a time drawn like the objective's training times (stratified over the global batch), so the
    classifier sees every noise level from clean to all-[MASK]. The loss is the cross-entropy of the labels;
    validation logs it as ``val/nelbo`` (nats per sequence, the checkpoint monitor) and ``val/accuracy``, both
    at random noise levels. The classifier takes no time input: for a masking process ``p(y | x_t, t) =
    p(y | x_t)``.
    """

    def _build_model(self, model: dict, init: str | None) -> torch.nn.Module:
        spec = dict(model)
        if spec.get("name") != "sequence_classifier":
            raise InputError(f"model.name: the noisy classifier needs 'sequence_classifier', got '{spec.get('name')}'")
        try:
            spec.pop("name")
            classifier = build_model("sequence_classifier", **spec)
        except (ValueError, TypeError) as exc:
            raise InputError(f"model: {exc}") from None
        if init:
            _load_into(classifier.backbone, _pretrained(init), init)
        return classifier

    @property
    def num_classes(self) -> int:
        return int(self.backbone.num_classes)

    @property
    def reports_likelihood(self) -> bool:
        return False

    def _objective_loss(self, batch: dict, generator: torch.Generator, global_batch: int | None = None,
                        offset: int = 0) -> ClassifierOutput:
        x0, attention_mask, labels = batch["input_ids"], batch.get("attention_mask"), batch["labels"]
        t = self._sample_t(x0, generator, global_batch, offset)
        _, _, x_t, _ = self.objective.noised(x0, attention_mask, t, None, generator)
        logits = self.backbone(x_t, attention_mask=attention_mask)
        nll = F.cross_entropy(logits.float(), labels, reduction="none")
        return ClassifierOutput(nll, torch.ones_like(labels), (logits.argmax(-1) == labels).long())

    def _training_batch(self, batch: dict, micro_batch: int, rank: int) -> dict:
        return batch  # no label dropout for a classifier

    def _eval_start(self) -> None:
        super()._eval_start()
        self._eval_sums["correct"] = torch.zeros((), dtype=torch.float64, device=self.device)

    def _eval_step(self, batch: dict, batch_idx: int) -> None:
        generator = self._generator(batch_idx, self.global_rank, batch["input_ids"].device, stream=7)
        out = self._objective_loss(batch, generator)
        self._eval_sums["nelbo"] += out.nelbo_per_seq.double().sum()
        self._eval_sums["tokens"] += out.num_tokens.double().sum()
        self._eval_sums["correct"] += out.correct.double().sum()

    on_validation_epoch_start = on_test_epoch_start = _eval_start
    validation_step = test_step = _eval_step
