"""Sequence classification head on top of any backbone's ``hidden_states`` (B, L, D).

Pooling over the sequence: ``"mean"`` over non-pad positions, ``"max"`` over non-pad positions, ``"first"``
or ``"last"`` non-pad position. For Caduceus-PS hidden states (``rcps=True``, D = 2 * d_model) the two strands
are conjoined: the forward half and the reverse-complement half (``rc``-flipped, i.e. read in its own
direction) are pooled separately and averaged, which makes the prediction invariant to reverse-complementing
the input.

:class:`SequenceClassifier` is a whole classifier as one module (backbone + head), built by the registry as
``sequence_classifier`` so it is exported and loaded like any backbone: the noise-aware classifier of
classifier guidance (``genodiff.diffusion.guidance``), trained on masked inputs ``x_t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from genodiff.models.config import ModelConfig
from genodiff.models.rcps import rc_hidden

__all__ = ["ClassificationHead", "pool_hidden", "POOLINGS", "SequenceClassifierConfig", "SequenceClassifier"]

POOLINGS = ("mean", "max", "first", "last")


def pool_hidden(h: torch.Tensor, mask: Optional[torch.Tensor], pooling: str = "mean") -> torch.Tensor:
    """h (B, L, D), mask (B, L) bool (True = real token) or None -> (B, D)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    B, L, _ = h.shape
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=h.device)
    mask = mask.to(torch.bool)
    m = mask.unsqueeze(-1)
    if pooling == "mean":
        return (h * m).sum(1) / m.sum(1).clamp(min=1).to(h.dtype)
    if pooling == "max":
        return h.masked_fill(~m, torch.finfo(h.dtype).min).amax(1)
    pos = torch.arange(L, device=h.device).expand(B, L)
    if pooling == "first":
        idx = torch.where(mask, pos, L).amin(1).clamp(max=L - 1)
    else:
        idx = torch.where(mask, pos, -1).amax(1).clamp(min=0)
    return h[torch.arange(B, device=h.device), idx]


class ClassificationHead(nn.Module):
    """hidden (B, L, D) [+ mask (B, L)] -> class logits (B, num_classes).

    ``rcps=True``: D must be even; strands are conjoined (see module doc) and the linear layer has
    D / 2 inputs.
    """

    def __init__(self, hidden_size: int, num_classes: int, pooling: str = "mean", rcps: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.rcps = rcps
        d_in = hidden_size // 2 if rcps else hidden_size
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(d_in, num_classes)

    def forward(self, hidden: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.rcps:
            half = hidden.shape[-1] // 2
            fwd = pool_hidden(hidden[..., :half], attention_mask, self.pooling)
            # rc strand in its own reading direction (so "first"/"last" are per strand)
            rmask = None if attention_mask is None else attention_mask.flip(-1)
            rev = pool_hidden(rc_hidden(hidden[..., half:]), rmask, self.pooling)
            pooled = 0.5 * (fwd + rev)
        else:
            pooled = pool_hidden(hidden, attention_mask, self.pooling)
        return self.score(self.dropout(pooled)).float()


@dataclass
class SequenceClassifierConfig(ModelConfig):
    """``backbone``: registry spec ``{"name": ..., **config}`` of the backbone; ``num_classes``; ``pooling`` (one
    of :data:`POOLINGS`); ``dropout`` before the linear layer."""

    backbone: Dict[str, Any] = field(default_factory=lambda: {"name": "caduceus"})
    num_classes: int = 2
    pooling: str = "mean"
    dropout: float = 0.0

    def __post_init__(self):
        if int(self.num_classes) < 2:
            raise ValueError(f"SequenceClassifierConfig: num_classes must be >= 2, got {self.num_classes}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"SequenceClassifierConfig: pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not isinstance(self.backbone, dict) or "name" not in self.backbone:
            raise ValueError("SequenceClassifierConfig: backbone must be a registry spec {'name': ..., ...}")


class SequenceClassifier(nn.Module):
    """``backbone.hidden_states`` (B, L, D) -> :class:`ClassificationHead` -> class logits (B, C) float32.

    ``forward(input_ids (B, L), time=None, attention_mask=None, onehot=None)``: ``onehot`` (B, L, V') float
    replaces ``input_ids`` (the backbone embeds one-hot rows linearly; differentiable), ``attention_mask``
    (True = real token) limits the pooling. Caduceus-PS backbones give exactly RC-invariant logits.
    """

    def __init__(self, backbone: nn.Module, config: SequenceClassifierConfig):
        super().__init__()
        self.config = config
        self.backbone = backbone
        rcps = bool(getattr(getattr(backbone, "config", None), "rcps", False))
        hidden = getattr(backbone, "hidden_size", None)
        if not isinstance(hidden, int):
            hidden = int(backbone.config.hidden_size)
        self.head = ClassificationHead(hidden, int(config.num_classes), pooling=config.pooling, rcps=rcps,
                                       dropout=config.dropout)

    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    def forward(self, input_ids: Optional[torch.Tensor], time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, onehot: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.backbone.hidden_states(input_ids, time=time, attention_mask=attention_mask, onehot=onehot)
        return self.head(h, attention_mask)
