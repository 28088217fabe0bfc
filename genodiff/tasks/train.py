"""``genodiff finetune`` and ``genodiff pretrain``: train (objective, backbone) on genome windows.

Outputs, in the run folder (Hydra's run dir, or ``output_dir``):
``checkpoints/last.ckpt`` (+ the best by validation NELBO), ``logs/`` (CSV and TensorBoard),
``export/`` (``model.safetensors`` + ``genodiff.json``, EMA weights) and ``summary.json``.
``resume=auto`` continues from ``checkpoints/last.ckpt`` of the run folder when it exists.

Labelled data (``data.kind=labelled``, ``configs/data/labelled.yaml``): the sequences of a benchmark task
(read here with :func:`genodiff.tasks.benchmark.load_task`) train a class-conditional model
(``model.num_classes`` is set from the task's classes; ``label_dropout``, default 0.1, of the training labels
become the null label), or, with ``model.name=sequence_classifier``, the noise-aware classifier of classifier
guidance. The export's ``genodiff.json`` then records the label vocabulary: ``condition`` (class names in id
order, ``null_label``, ``label_dropout``, the task and how it was split) or ``classifier`` (the same, for a
classifier), which ``genodiff sample condition.label=<name>`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig

from genodiff.benchmarks.folds import inner_split
from genodiff.config import resolve_text_config, to_plain
from genodiff.diffusion.build import build_objective, make_vocab
from genodiff.errors import InputError
from genodiff.interop.export import read_spec, save_export
from genodiff.models.registry import MODEL_REGISTRY
from genodiff.ops import configure_from
from genodiff.tasks.benchmark import load_task
from genodiff.tasks.run_folder import output_dir
from genodiff.training.batching import plan_batches
from genodiff.training.checkpoint_io import AtomicCheckpointIO
from genodiff.training.datamodule import (
    GenomeDataConfig,
    GenomeDataModule,
    LabelledArrays,
    LabelledDataConfig,
    LabelledDataModule,
)
from genodiff.training.module import DiffusionLitModule, NoisyClassifierLitModule
from genodiff.training.text_datamodule import TextDataModule

DEV_SPLITS = ("dev", "valid", "validation", "val")


def quiet_lightning_logging() -> None:
    """Lightning's loggers print through their own handlers; stop them also reaching Hydra's root handler
    (every line would appear twice) and drop the advertising tip."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")
    logging.getLogger("lightning").propagate = False
    logging.getLogger("lightning.pytorch").addFilter(lambda record: "litlogger" not in record.getMessage())
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())


def resolve_precision(requested: str | None) -> str:
    """``auto``: bf16-mixed on a GPU that supports it, else 32-true."""
    if requested in (None, "auto"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    return str(requested)


def world_size_of(trainer_cfg: dict) -> int:
    devices = trainer_cfg.get("devices", 1)
    nodes = int(trainer_cfg.get("num_nodes", 1))
    if isinstance(devices, int):
        return devices * nodes
    if isinstance(devices, (list, tuple)):
        return len(devices) * nodes
    if devices in ("auto", -1, "-1"):
        if trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto") and torch.cuda.is_available():
            return torch.cuda.device_count() * nodes
        return nodes
    return int(devices) * nodes


def _resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    resume = cfg.get("resume")
    if not resume:
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    path = Path(str(resume))
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise InputError(f"resume: checkpoint not found: {path}")
    return str(path)




def load_labelled(config: LabelledDataConfig) -> tuple[dict[str, LabelledArrays], list[str], dict]:
    """Train/valid/test :class:`LabelledArrays` of ``config.task``, the class names and how it was split.

    The task's own splits are used when present (``train``, a dev split, ``test``; a single table is ``all``);
    a missing test split takes ``test_fraction`` of the sequences, a missing dev split ``valid_fraction`` of the
    rest, both stratified by class with ``config.seed`` (``genodiff.benchmarks.folds.inner_split``)."""
    data, _meta = load_task(str(config.task), {"root": config.root, "seq_column": config.seq_column,
                                               "label_column": config.label_column, "where": config.where,
                                               "max_length": config.max_length}, config.cache_dir)
    sets = data.splits
    base_key = "train" if "train" in sets else "all" if "all" in sets else None
    if base_key is None:
        raise InputError(f"data.task={config.task}: no train split (splits: {', '.join(sets)})")
    base = sets[base_key]
    index = np.arange(len(base))
    made = []
    if "test" in sets:
        test = sets["test"]
    else:
        index, held = inner_split(index, base.labels, float(config.test_fraction), int(config.seed))
        test, made = base.subset(held), made + ["test"]
    dev_key = next((k for k in DEV_SPLITS if k in sets), None)
    if dev_key is not None:
        valid = sets[dev_key]
    else:
        index, held = inner_split(index, base.labels, float(config.valid_fraction), int(config.seed) + 1)
        valid, made = base.subset(held), made + ["valid"]
    train = base.subset(index)
    splits = {name: LabelledArrays(s.ids, s.lengths, s.labels) for name, s in
              (("train", train), ("valid", valid), ("test", test))}
    info = {"task": str(config.task), "source": data.source, "source_splits": sorted(sets),
            "held_out": made, "split_seed": int(config.seed), "valid_fraction": float(config.valid_fraction),
            "test_fraction": float(config.test_fraction), "sizes": {k: len(v) for k, v in splits.items()}}
    return splits, list(data.classes), info


def _with_num_classes(model: dict, num_classes: int) -> dict:
    """The model spec with ``num_classes`` from the data (a different explicit value is an error)."""
    model = dict(model)
    given = model.get("num_classes")
    if given not in (None, "auto", 0) and int(given) != num_classes:
        raise InputError(f"model.num_classes={given} but data.task has {num_classes} classes")
    model["num_classes"] = num_classes
    return model


def _with_input_dim(model: dict, objective: dict, vocab) -> dict:
    """The model spec with ``input_dim`` (``auto`` or unset) set to what a continuous-input objective feeds the
    backbone (Plaid: 2 embed_dim + 4 time_features channels); a different explicit value is an error."""
    needed = getattr(build_objective(dict(objective), make_vocab(vocab)), "input_dim", None)
    given = model.get("input_dim")
    if needed is None:
        if given == "auto":
            raise InputError(f"model.input_dim=auto needs an objective with continuous inputs (plaid), "
                             f"not {objective.get('name')!r}")
        return model
    if given not in (None, "auto", 0) and int(given) != needed:
        raise InputError(f"model.input_dim={given} but objective {objective.get('name')} feeds {needed} channels "
                         f"(2 embed_dim + 4 time_features): set model.input_dim=auto")
    return {**model, "input_dim": needed}


def build_run(cfg: DictConfig, run_dir: Path):
    """(LightningModule, DataModule, Trainer kwargs, batch plan) from a composed training config."""
    trainer_cfg = to_plain(cfg.trainer)
    plan = plan_batches(int(cfg.global_batch_size), world_size_of(trainer_cfg), int(cfg.max_per_device_batch_size))
    data_cfg = to_plain(cfg.data)
    model_spec = to_plain(cfg.model)
    module_class, label_dropout = DiffusionLitModule, 0.0
    if model_spec.get("name") == "sequence_classifier":
        module_class = NoisyClassifierLitModule
        if data_cfg.get("kind") != "labelled":
            raise InputError("model.name=sequence_classifier trains on labelled sequences: set data=labelled")
    if data_cfg.get("kind") == "text":  # cfg went through resolve_text_config (vocab, model.vocab_size)

        datamodule = TextDataModule(data_cfg, batch_size=plan.per_device_batch_size, max_steps=int(cfg.max_steps),
                                    accumulate_grad_batches=plan.accumulate_grad_batches)
    elif data_cfg.get("kind") == "labelled":
        names = {f.name for f in fields(LabelledDataConfig)}
        unknown = sorted(set(data_cfg) - names)
        if unknown:
            raise InputError(f"data: unknown labelled data key(s) {unknown} (known: {sorted(names)})")
        config = LabelledDataConfig(**data_cfg)
        splits, classes, info = load_labelled(config)
        datamodule = LabelledDataModule(config, splits, classes, batch_size=plan.per_device_batch_size,
                                        max_steps=int(cfg.max_steps),
                                        accumulate_grad_batches=plan.accumulate_grad_batches)
        datamodule.split_info = info
        model_spec = _with_num_classes(model_spec, len(classes))
        if module_class is DiffusionLitModule:
            label_dropout = float(cfg.get("label_dropout", 0.1))
            if not 0.0 <= label_dropout < 1.0:
                raise InputError(f"label_dropout: must be in [0, 1), got {label_dropout}")
    else:
        data_cfg.pop("kind", None)
        try:
            data_config = GenomeDataConfig(**data_cfg)
        except TypeError as exc:
            raise InputError(f"data: {exc}") from None
        datamodule = GenomeDataModule(data_config, batch_size=plan.per_device_batch_size,
                                      max_steps=int(cfg.max_steps), accumulate_grad_batches=plan.accumulate_grad_batches)
    if "input_dim" in model_spec or cfg.objective.get("name") == "plaid":
        model_spec = _with_input_dim(model_spec, to_plain(cfg.objective), to_plain(cfg.get("vocab", "dna")))
    optim = to_plain(cfg.optim)
    optim.setdefault("max_steps", int(cfg.max_steps))
    kwargs = {"label_dropout": label_dropout} if label_dropout else {}
    module = module_class(
        model=model_spec,
        objective=to_plain(cfg.objective),
        optim=optim, vocab=to_plain(cfg.get("vocab", "dna")), ema_decay=cfg.get("ema_decay"), seed=int(cfg.seed),
        init=cfg.get("init"), **kwargs,
    )
    return module, datamodule, trainer_cfg, plan


def make_trainer(cfg: DictConfig, trainer_cfg: dict, plan, run_dir: Path, extra_callbacks=()):
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", save_last=True, auto_insert_metric_name=False,
                        every_n_train_steps=int(cfg.checkpoint_every_n_steps), save_top_k=0),
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/nelbo", mode="min", save_top_k=1,
                        auto_insert_metric_name=False),
        *extra_callbacks,
    ]
    loggers = []
    wanted = list(cfg.get("loggers") or [])
    if "csv" in wanted:
        loggers.append(CSVLogger(str(run_dir), name="logs", version=""))
    if "tensorboard" in wanted:
        try:
            loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tensorboard"))
        except ModuleNotFoundError:  # neither tensorboard nor tensorboardX installed
            pass
    if "wandb" in wanted:
        loggers.append(WandbLogger(save_dir=str(run_dir), project=cfg.get("wandb_project", "genodiff")))
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    progress = cfg.get("progress", "auto")
    show_progress = bool(progress is True or (progress == "auto" and os.isatty(2)))
    if show_progress:
        callbacks.append(RichProgressBar())
    kwargs = dict(trainer_cfg)
    kwargs["precision"] = resolve_precision(kwargs.get("precision"))
    val_every = int(cfg.val_every_n_steps)
    kwargs.update(
        max_steps=int(cfg.max_steps), accumulate_grad_batches=plan.accumulate_grad_batches,
        callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir),
        enable_progress_bar=show_progress, plugins=[AtomicCheckpointIO()],
        val_check_interval=val_every * plan.accumulate_grad_batches if val_every else None,
        check_val_every_n_epoch=None, limit_val_batches=kwargs.get("limit_val_batches", 1.0) if val_every else 0,
        num_sanity_val_steps=0, enable_model_summary=False,
        use_distributed_sampler=False,  # the DataModule shards batches by rank itself (resumable)
    )
    return L.Trainer(**kwargs)


def label_spec(module, datamodule) -> dict:
    """``{"condition": ...}`` (class-conditional model) or ``{"classifier": ...}`` (noisy classifier) for the
    export of a run on labelled data: class names in id order, the null label and label dropout (condition),
    the task and its splits; ``{}`` otherwise."""
    if not isinstance(datamodule, LabelledDataModule):
        return {}
    info = {"classes": list(datamodule.classes), "num_classes": len(datamodule.classes),
            "data": getattr(datamodule, "split_info", {"task": datamodule.config.task})}
    if isinstance(module, NoisyClassifierLitModule):
        return {"classifier": info}
    return {"condition": {**info, "null_label": len(datamodule.classes),
                          "label_dropout": float(module.hparams.get("label_dropout", 0.0) or 0.0)}}


def export_model(module, run_dir: Path, cfg: DictConfig, extra: dict | None = None, labels: dict | None = None) -> Path:
    if isinstance(module, NoisyClassifierLitModule) or not cfg.get("init"):
        model = dict(module.hparams["model"])  # the composed spec, with num_classes filled from the data
    else:
        model = _model_spec(module)
    if hasattr(module.backbone, "export_spec"):  # hf_mlm: records the transformers config (rebuilds offline)
        model = module.backbone.export_spec()
    spec = {
        "model": model,
        "objective": to_plain(cfg.objective),
        "vocab": to_plain(cfg.vocab),
        "training": {"job": cfg.get("job"), "global_step": int(module.global_step), "seed": int(cfg.seed),
                     "ema": module.ema is not None, "init": cfg.get("init"), **(extra or {})},
        **(labels or {}),
    }
    module.swap_in_ema()
    try:
        return save_export(module.backbone, spec, run_dir / "export", objective=module.objective)  # Plaid: + E, gamma
    finally:
        module.swap_out_ema()


class ExportOnFitEnd(L.Callback):
    """Export the EMA weights on rank 0 when fitting ends (runs inside spawned DDP workers too)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir

    def on_fit_end(self, trainer, module):
        if trainer.is_global_zero:
            datamodule = trainer.datamodule
            extra = datamodule.export_extra() if hasattr(datamodule, "export_extra") else None
            path = export_model(module, self.run_dir, self.cfg, extra, label_spec(module, datamodule))
            if hasattr(datamodule, "write_export_files"):  # text: the tokenizer, into export/tokenizer/
                datamodule.write_export_files(path)


def _model_spec(module) -> dict:
    """Registry spec of a backbone loaded from a pretrained checkpoint (its dataclass config, or the backbone's
    own ``export_spec()``)."""
    if hasattr(module.backbone, "export_spec"):
        return module.backbone.export_spec()
    config = getattr(module.backbone, "config", None)
    kind = type(module.backbone).__name__.lower()
    name = {"caduceus": "caduceus", "mambalm": "mamba_lm", "dit": "dit", "transformerar": "transformer_ar"}.get(kind)
    if config is None or name not in MODEL_REGISTRY:
        raise InputError(f"export: cannot describe backbone {type(module.backbone).__name__}")
    return {"name": name, **asdict(config)}


def run(cfg: DictConfig, callbacks=()) -> dict[str, Any]:
    """Train, keep the best and last checkpoints, export the EMA weights; returns a summary dict.

    ``callbacks``: extra Lightning callbacks (for notebooks and tests)."""
    configure_from(cfg.get("ops"))  # ops.scan_backend (inherited by DDP ranks through the environment)
    cfg = resolve_text_config(cfg)  # data.kind=text: vocab and model.vocab_size from the tokenizer; else unchanged

    run_dir = output_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    quiet_lightning_logging()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    torch.use_deterministic_algorithms(bool(cfg.get("deterministic", False)), warn_only=True)
    module, datamodule, trainer_cfg, plan = build_run(cfg, run_dir)
    extra = list(callbacks)
    if cfg.get("export", True):
        extra.append(ExportOnFitEnd(cfg, run_dir))
    trainer = make_trainer(cfg, trainer_cfg, plan, run_dir, extra)
    ckpt = _resume_path(cfg, run_dir)
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "global_step": int(trainer.global_step), "resumed_from": ckpt,
        "batch_plan": {"global": plan.global_batch_size, "per_device": plan.per_device_batch_size,
                       "accumulate": plan.accumulate_grad_batches, "world_size": plan.world_size},
        "split_windows": datamodule.split_sizes(), "seconds": round(time.time() - started, 2),
        "vocab": to_plain(cfg.vocab),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1},
    }
    if cfg.get("export", True):
        summary["export"] = str(run_dir / "export")

        summary["global_step"] = int(read_spec(run_dir / "export")["training"]["global_step"])
    if trainer.is_global_zero:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: summary[k] for k in ("run_dir", "global_step", "metrics")}, indent=2))
    return summary
