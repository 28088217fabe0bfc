"""Sequence classification head on top of any backbone's ``hidden_states`` (B, L, D).

Pooling over the sequence: ``"mean"`` over non-pad positions, ``"max"`` over non-pad positions, ``"first"``
or ``"last"`` non-pad position. For Caduceus-PS hidden states (``rcps=True``, D = 2 * d_model) the two strands
are conjoined: the forward half and the reverse-complement half (``rc``-flipped, i.e. read in its own
direction) are pooled separately and averaged, which makes the prediction invariant to reverse-complementing
the input.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from genodiff.models.rcps import rc_hidden

__all__ = ["ClassificationHead", "pool_hidden", "POOLINGS"]

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
