"""AdamW with constant-with-warmup or cosine learning-rate schedules (stepped per optimizer step)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genodiff.errors import InputError

SCHEDULES = ("constant", "constant_warmup", "cosine")


@dataclass
class OptimConfig:
    """Optimizer settings. ``max_steps`` is needed by the cosine schedule (decays to ``min_lr_ratio * lr``)."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "constant_warmup"
    warmup_steps: int = 0
    max_steps: int | None = None
    min_lr_ratio: float = 0.0
    no_decay_on_norms_and_biases: bool = True

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        if self.schedule not in SCHEDULES:
            raise InputError(f"optim.schedule: unknown schedule '{self.schedule}' (choose from {', '.join(SCHEDULES)})")
        if self.schedule == "cosine" and not self.max_steps:
            raise InputError("optim.max_steps must be set for the cosine schedule")


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of ``cfg.lr`` after ``step`` optimizer steps (step 0 = the first update)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig):
    """AdamW (no weight decay on 1-D parameters: norms, biases, A_log/D) and a per-step LambdaLR."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if cfg.no_decay_on_norms_and_biases and param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
    return optimizer, scheduler
