"""Reverse-complement parameter sharing (RCPS) modules of Caduceus-PS.

An RCPS hidden state has 2 * d channels: the first half is the forward strand, the second half the
reverse-complement strand stored in *reversed* coordinates, so the reverse complement of a hidden state is
``rc(v) = v.flip(L, channels)`` (dims -2 and -1). Every module here commutes with that operation:
``f(rc(x)) = rc(f(x))`` (token level: ``rc(ids) = comp[ids.flip(L)]``).

Parameter/buffer names follow the official ``modeling_rcps.py`` (``embedding.weight``, ``complement_map``,
``submodule.*``, ``lm_head.weight``) so checkpoints load unchanged.

The *stacked* layout holds the same state as (2B, L, d): ``[v1 ; rc(v2)]`` for ``v = [v1 | v2]``
(:func:`to_stacked` / :func:`from_stacked`). There the RCPS wrapper and add+norm are their plain modules on
a batch of 2B (the wrapper's both-strands batch), so a stack of blocks runs without splitting, flipping and
concatenating halves in every block; the fused block's half swap is one flip, :func:`swap_rc_stacked`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from genodiff.ops.norm import add_norm

__all__ = [
    "rc_hidden",
    "rc_ids",
    "rc_logits",
    "complement_tensor",
    "RCPSEmbedding",
    "RCPSWrapper",
    "RCPSAddNormWrapper",
    "RCPSLMHead",
    "rcps_add_norm",
    "to_stacked",
    "from_stacked",
    "swap_rc_stacked",
]


def rc_hidden(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of a hidden state (..., L, C): flip length and channels."""
    return x.flip(-2, -1)


def to_stacked(x: torch.Tensor) -> torch.Tensor:
    """(B, L, 2d) RCPS state -> (2B, L, d) stacked layout ``[x1 ; rc(x2)]`` (see the module docstring)."""
    half = x.shape[-1] // 2
    return torch.cat([x[..., :half], rc_hidden(x[..., half:])], dim=0)


def from_stacked(s: torch.Tensor) -> torch.Tensor:
    """(2B, L, d) stacked layout -> (B, L, 2d) RCPS state; inverse of :func:`to_stacked`."""
    batch = s.shape[0] // 2
    return torch.cat([s[:batch], rc_hidden(s[batch:])], dim=-1)


def swap_rc_stacked(s: torch.Tensor) -> torch.Tensor:
    """The RCPS half swap ``[x1 | x2] -> [x2 | x1]`` in the stacked layout: ``[s1 ; s2] -> [rc(s2) ; rc(s1)]``
    (one flip over the strand, length and channel dims). (2B, L, d) -> (2B, L, d)."""
    two_b, length, d = s.shape
    return s.reshape(2, two_b // 2, length, d).flip(0, 2, 3).reshape(two_b, length, d)


def rc_ids(input_ids: torch.Tensor, complement_map: torch.Tensor) -> torch.Tensor:
    """Reverse complement of token ids (..., L): ``complement_map[input_ids.flip(-1)]``."""
    return complement_map.to(input_ids.device)[input_ids.flip(-1)]


def rc_logits(logits: torch.Tensor, complement_map: torch.Tensor) -> torch.Tensor:
    """Map logits computed on rc(x) to the coordinates of x: ``logits.flip(L)[..., comp]``. (B, L, V) -> (B, L, V)."""
    return logits.flip(-2)[..., complement_map.to(logits.device)]


def complement_tensor(complement_map: Sequence[int]) -> torch.Tensor:
    """Complement map (sequence of ids) as a LongTensor (V,)."""
    return torch.as_tensor(list(complement_map), dtype=torch.long)


class RCPSEmbedding(nn.Module):
    """ids (B, L) -> (B, L, 2 * d_model): ``[E[ids] | rc(E[rc(ids)])]`` with one table ``embedding``."""

    def __init__(self, vocab_size: int, d_model: int, complement_map: Sequence[int], device=None, dtype=None):
        super().__init__()
        self.register_buffer("complement_map", complement_tensor(complement_map))
        self.embedding = nn.Embedding(vocab_size, d_model, device=device, dtype=dtype)

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        fwd = self.embedding(input_ids)
        rc = rc_hidden(self.embedding(rc_ids(input_ids, self.complement_map)))
        return torch.cat([fwd, rc], dim=-1)


class RCPSWrapper(nn.Module):
    """Wrap a (B, L, d) -> (B, L, d') module into (B, L, 2d) -> (B, L, 2d'): ``[M(x1) | rc(M(rc(x2)))]``.

    The two strands go through ``submodule`` as one batch of 2B (same math, one call).
    """

    def __init__(self, submodule: nn.Module):
        super().__init__()
        self.submodule = submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_stacked(self.submodule(to_stacked(x)))


def rcps_add_norm(norm: nn.Module, x: torch.Tensor, residual: Optional[torch.Tensor], swap: bool = False,
                  prenorm: bool = True, residual_in_fp32: bool = False):
    """RC-equivariant residual add + norm on (B, L, 2d) tensors with a shared ``norm`` of width d.

    With halves ``a, b`` of ``s = x + residual`` (``s = x`` if residual is None), taken as (first, second)
    or, with ``swap``, as (second, first) -- the official fused RCPS block's half swap:
    ``normed = [norm(a) | rc(norm(rc(b)))]`` and ``new_residual = [a | b]``.
    Returns ``(normed, new_residual)`` with ``prenorm`` else ``normed``.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    r1 = r2 = None
    if residual is not None:
        r1, r2 = residual[..., :half], residual[..., half:]
    if swap:
        x1, x2, r1, r2 = x2, x1, r2, r1
    n_f, s_f = add_norm(x1, r1, norm, prenorm=True, residual_in_fp32=residual_in_fp32)
    n_r, s_r = add_norm(rc_hidden(x2), None if r2 is None else rc_hidden(r2), norm, prenorm=True,
                        residual_in_fp32=residual_in_fp32)
    normed = torch.cat([n_f, rc_hidden(n_r)], dim=-1)
    if not prenorm:
        return normed
    return normed, torch.cat([s_f, rc_hidden(s_r)], dim=-1)


class RCPSAddNormWrapper(RCPSWrapper):
    """Non-fused RCPS add+norm (official ``RCPSAddNormWrapper``): parameters under ``submodule.*``.

    ``forward(x (B, L, 2d), residual=None, prenorm=False)``: see :func:`rcps_add_norm` (no swap).
    """

    def __init__(self, submodule: nn.Module, residual_in_fp32: bool = False):
        super().__init__(submodule)
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None, prenorm: bool = False):
        return rcps_add_norm(self.submodule, x, residual, swap=False, prenorm=prenorm,
                             residual_in_fp32=self.residual_in_fp32)


class RCPSLMHead(nn.Module):
    """(B, L, 2 * true_dim) -> (B, L, vocab): ``h1 @ W.T + h2.flip(channels) @ W[comp].T`` (``lm_head.weight`` W)."""

    def __init__(self, true_dim: int, vocab_size: int, complement_map: Sequence[int], device=None, dtype=None):
        super().__init__()
        self.register_buffer("complement_map", complement_tensor(complement_map))
        self.true_dim = true_dim
        self.lm_head = nn.Linear(true_dim, vocab_size, bias=False, device=device, dtype=dtype)

    @property
    def weight(self) -> nn.Parameter:
        return self.lm_head.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.true_dim
        if x.shape[-1] != 2 * d:
            raise ValueError(f"RCPSLMHead: expected {2 * d} channels, got {x.shape[-1]}")
        w = self.lm_head.weight
        return F.linear(x[..., :d], w) + F.linear(x[..., d:].flip(-1), w[self.complement_map])
