"""One LightningModule around (objective, backbone) for MDLM, AR, SEDD, D3PM and MLM training.

The module owns no diffusion math: the objective (``genodiff.diffusion``) turns a batch of clean tokens
into per-sequence NELBOs, the backbone (``genodiff.models``) is the denoiser. What lives here:

* deterministic noise: each micro-batch draws its times and masks from a generator seeded by
  ``(seed, micro-batch index, rank)``, so a resumed run repeats an uninterrupted one exactly;
* time sampling stratified over the whole global batch (all devices and accumulation steps);
* a non-finite guard (the step is refused before any weight changes; the last good checkpoint stays);
* EMA weights, swapped in for validation, testing and export;
* float64 aggregation of validation metrics: NELBO (nats/token), bits per token and a perplexity bound. The
  validation NELBO is one draw per sequence of the likelihood estimator of ``genodiff evaluate``
  (:func:`genodiff.diffusion.likelihood.estimate_nelbo`, ``num_masked`` for MDLM without time conditioning),
  not the training integrand: that one is truncated at ``sampling_eps`` and, with ``alpha(1) > 0``, misses the
  prior mass, so it is not a bound; this one is an upper bound in expectation on ``-log p`` of the model as
  sampled, for every schedule. (MLM, which has no likelihood, logs its masked cross-entropy.)
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from genodiff.diffusion.build import build_objective, make_vocab
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


def build_backbone(spec: dict, init: str | None = None) -> torch.nn.Module:
    """Backbone from ``{"name": registry name, **config}``; ``init`` loads pretrained weights:
    ``hf:<repo>`` or a Hugging Face Caduceus folder (``config.json``), or a genodiff export."""
    spec = dict(spec)
    name = spec.pop("name")
    if init:
        path = Path(str(init)).expanduser()
        if path.is_dir() and (path / "genodiff.json").is_file():
            return load_export(path).model
        model, _config = load_pretrained(str(init))
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
    """

    def __init__(self, model: dict, objective: dict, optim: dict | None = None, vocab: Any = "dna",
                 ema_decay: float | None = 0.9999, seed: int = 0, init: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = build_backbone(model, init)
        self.vocab = make_vocab(vocab)
        self.objective = build_objective(objective, self.vocab)
        self.optim_config = OptimConfig(**dict(optim or {}))
        self.ema = ParameterEMA(self.backbone, ema_decay) if ema_decay else None
        self._ema_backup: dict[str, torch.Tensor] | None = None
        self._sample_t_takes_global = "global_batch_size" in inspect.signature(
            getattr(self.objective, "sample_t", lambda *a, **k: None)).parameters
        self._eval_sums: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ denoiser
    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        """Backbone logits cut to the diffusion vocabulary (published Caduceus pads V=12 to 16)."""
        return self.backbone(x_t, time=t)[..., : self.vocab.size]

    def forward(self, input_ids: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(input_ids, time)

    # ------------------------------------------------------------------ noise
    def _generator(self, micro_batch: int, rank: int, device: torch.device, stream: int = 0) -> torch.Generator:
        seed = (int(self.hparams.seed) * 1_000_003 + micro_batch * 8191 + rank * 131 + stream) % (2**63 - 1)
        return torch.Generator(device=device).manual_seed(seed)

    def _objective_loss(self, batch: dict, generator: torch.Generator, global_batch: int | None = None,
                        offset: int = 0):
        x0 = batch["input_ids"]
        attention_mask = batch.get("attention_mask")
        t = None
        if global_batch is not None and self._sample_t_takes_global:
            t = self.objective.sample_t(x0.shape[0], generator=generator, device=x0.device,
                                        global_batch_size=global_batch, offset=offset)
        return self.objective.loss(x0, attention_mask, t, denoiser=self.denoiser, generator=generator)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        accumulate = self.trainer.accumulate_grad_batches
        world, rank = self.trainer.world_size, self.global_rank
        within = batch_idx % accumulate
        micro_batch = self.global_step * accumulate + within
        local = batch["input_ids"].shape[0]
        generator = self._generator(micro_batch, rank, batch["input_ids"].device)
        out = self._objective_loss(batch, generator, global_batch=local * world * accumulate,
                                   offset=(within * world + rank) * local)
        loss = out.loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step} (micro-batch {micro_batch}); "
                "the run stopped before updating the weights and the last checkpoint is intact"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=local)
        if getattr(self.objective, "is_likelihood", True):
            self.log("train/bits_per_token", loss / LN2, batch_size=local)
        return loss

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.backbone)

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.backbone, self.optim_config)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ evaluation
    def swap_in_ema(self) -> None:
        if self.ema is not None and self._ema_backup is None:
            self._ema_backup = self.ema.swap_in(self.backbone)

    def swap_out_ema(self) -> None:
        if self._ema_backup is not None:
            self.ema.restore(self.backbone, self._ema_backup)
            self._ema_backup = None

    def _eval_start(self) -> None:
        self.swap_in_ema()
        self._eval_sums = {"nelbo": torch.zeros((), dtype=torch.float64, device=self.device),
                           "tokens": torch.zeros((), dtype=torch.float64, device=self.device)}

    def _eval_step(self, batch: dict, batch_idx: int) -> None:
        # a fixed generator per batch makes validation curves comparable across steps
        generator = self._generator(batch_idx, self.global_rank, batch["input_ids"].device, stream=7)
        if getattr(self.objective, "is_likelihood", True):  # the bound, one draw per sequence (module docstring)
            est = estimate_nelbo(self.objective, self.denoiser, batch["input_ids"], batch.get("attention_mask"),
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
        if getattr(self.objective, "is_likelihood", True):
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
