"""Bi-directional Mamba (Caduceus ``BiMambaWrapper``).

``out = combine(mamba_fwd(h), flip_L(mamba_rev(flip_L(h))))`` with ``combine`` = ``+`` (strategy ``"add"``) or
``*`` (``"ew_multiply"``). With ``bidirectional_weight_tie`` the reverse mixer shares ``in_proj`` and
``out_proj`` (weights and biases) with the forward one; it always has its own ``conv1d``, ``x_proj``,
``dt_proj``, ``A_log`` and ``D``.

Because ``in_proj`` acts position-wise, ``in_proj(flip_L(h)) = flip_L(in_proj(h))``: the shared projection is
computed once. With strategy ``"add"`` and a tied ``out_proj`` the two directions are also summed before one
``out_proj`` (linearity). Both are exact rewrites (only float rounding order differs).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from genodiff.models.mamba import Mamba

__all__ = ["BiMamba", "BIDIRECTIONAL_STRATEGIES"]

BIDIRECTIONAL_STRATEGIES = ("add", "ew_multiply")


class BiMamba(nn.Module):
    """Input and output (B, L, d_model). Submodules ``mamba_fwd`` and (if bidirectional) ``mamba_rev``."""

    def __init__(self, d_model: int, bidirectional: bool = True, bidirectional_strategy: Optional[str] = "add",
                 bidirectional_weight_tie: bool = True, **mamba_kwargs):
        super().__init__()
        if bidirectional and bidirectional_strategy is None:
            bidirectional_strategy = "add"
        if bidirectional and bidirectional_strategy not in BIDIRECTIONAL_STRATEGIES:
            raise NotImplementedError(
                f"BiMamba: bidirectional_strategy must be one of {BIDIRECTIONAL_STRATEGIES}, "
                f"got {bidirectional_strategy!r}")
        self.bidirectional = bidirectional
        self.bidirectional_strategy = bidirectional_strategy
        self.bidirectional_weight_tie = bidirectional_weight_tie
        self.mamba_fwd = Mamba(d_model, **mamba_kwargs)
        if bidirectional:
            self.mamba_rev = Mamba(d_model, **mamba_kwargs)
            if bidirectional_weight_tie:
                self.tie_weights()
        else:
            self.mamba_rev = None

    def tie_weights(self) -> None:
        """Make ``mamba_rev`` share ``in_proj`` / ``out_proj`` parameters with ``mamba_fwd`` (no-op untied)."""
        if self.mamba_rev is None or not self.bidirectional_weight_tie:
            return
        self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
        self.mamba_rev.in_proj.bias = self.mamba_fwd.in_proj.bias
        self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight
        self.mamba_rev.out_proj.bias = self.mamba_fwd.out_proj.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states: (B, L, d_model) -> (B, L, d_model)."""
        fwd, rev = self.mamba_fwd, self.mamba_rev
        if rev is None:
            return fwd(hidden_states)
        xz = fwd.in_proj(hidden_states)
        xz_rev = xz if rev.in_proj.weight is fwd.in_proj.weight and rev.in_proj.bias is fwd.in_proj.bias \
            else rev.in_proj(hidden_states)
        y_fwd = fwd.ssm(xz)  # (B, L, d_inner)
        y_rev = rev.ssm(xz_rev, reverse=True)  # the time-reversed sequence's mixer, in forward coordinates
        if self.bidirectional_strategy == "add":
            if rev.out_proj.weight is fwd.out_proj.weight:
                out = F.linear(y_fwd + y_rev, fwd.out_proj.weight)
                if fwd.out_proj.bias is not None:
                    out = out + 2 * fwd.out_proj.bias
                return out
            return fwd.out_proj(y_fwd) + rev.out_proj(y_rev)
        return fwd.out_proj(y_fwd) * rev.out_proj(y_rev)  # ew_multiply
