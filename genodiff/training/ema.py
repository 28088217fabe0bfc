"""Exponential moving average of model parameters (swapped in for evaluation, sampling and export)."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class ParameterEMA:
    """``shadow <- decay * shadow + (1 - decay) * param`` after every optimizer step, in float32.

    Buffers are not averaged (they are copied as they are when swapping). ``state_dict`` round-trips
    exactly so a resumed run continues the same average.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        for name, param in model.named_parameters():
            if name in self.shadow:
                shadow = self.shadow[name]
                if shadow.device != param.device:
                    shadow = self.shadow[name] = shadow.to(param.device)
                shadow.lerp_(param.detach().float(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            if name in self.shadow:
                param.copy_(self.shadow[name].to(param.dtype))

    def swap_in(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Replace the model's averaged parameters by their averages; returns the originals for :meth:`restore`."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow}
        self.copy_to(model)
        return backup

    @staticmethod
    @torch.no_grad()
    def restore(model: nn.Module, backup: dict[str, torch.Tensor]) -> None:
        """Put back the parameters :meth:`swap_in` returned."""
        for name, param in model.named_parameters():
            if name in backup:
                param.copy_(backup[name])

    @contextmanager
    def swapped_in(self, model: nn.Module):
        """Temporarily replace the model's parameters by their averages."""
        backup = self.swap_in(model)
        try:
            yield model
        finally:
            self.restore(model, backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.detach().cpu().clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state does not match the model: {sorted(missing)[:5]}")
        for name, value in state["shadow"].items():
            self.shadow[name] = value.to(self.shadow[name].device, torch.float32).clone()
