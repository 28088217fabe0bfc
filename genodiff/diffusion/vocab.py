"""Vocabulary description used by the diffusion core.

The core never looks at token strings; it needs only

* ``size`` -- V, the number of logits a denoiser returns (last dimension of ``[B, L, V]``);
* ``mask_id`` -- the absorbing ``[MASK]`` token of the forward process;
* ``allowed_output_ids`` -- the ids the denoiser may put probability mass on (never ``mask_id``);
  everything else is set to ``-inf`` before the log-softmax (SUBS "zero masking probability");
* ``pad_id`` -- optional; padding positions are never noised and never scored.

Positions whose *clean* token is not an allowed output id (padding, ``N`` in DNA when only
A/C/G/T are allowed, special tokens) are treated as known context: they are never masked and never
scored, exactly like padding. See :meth:`DiffusionVocab.scorable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from genodiff.data.genome import vocab as dna_vocab

__all__ = ["DiffusionVocab"]


@dataclass(frozen=True)
class DiffusionVocab:
    """Token-id conventions for the diffusion core (see module docstring).

    Args:
        size: vocabulary size V (number of logits).
        mask_id: id of the absorbing ``[MASK]`` token, ``0 <= mask_id < size``.
        allowed_output_ids: ids the denoiser may predict; must not contain ``mask_id``.
        pad_id: optional padding id.
    """

    size: int
    mask_id: int
    allowed_output_ids: tuple[int, ...]
    pad_id: int | None = None
    _allowed_mask: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = tuple(int(i) for i in self.allowed_output_ids)
        object.__setattr__(self, "allowed_output_ids", ids)
        if not 0 <= self.mask_id < self.size:
            raise ValueError(f"mask_id {self.mask_id} outside vocabulary of size {self.size}")
        if not ids:
            raise ValueError("allowed_output_ids is empty")
        if len(set(ids)) != len(ids) or any(not 0 <= i < self.size for i in ids):
            raise ValueError(f"allowed_output_ids {ids} must be distinct ids in [0, {self.size})")
        if self.mask_id in ids:
            raise ValueError("allowed_output_ids must not contain mask_id (zero masking probability)")
        m = torch.zeros(self.size, dtype=torch.bool)
        m[list(ids)] = True
        object.__setattr__(self, "_allowed_mask", m)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def dna(cls, include_n: bool = False) -> "DiffusionVocab":
        """Caduceus-compatible DNA vocabulary (V=12, ``[MASK]``=3, ``[PAD]``=4).

        Allowed outputs are A, C, G, T (ids 7-10); with ``include_n`` also N (11).
        """
        ids = dna_vocab.DNA_IDS_WITH_N if include_n else dna_vocab.DNA_IDS
        return cls(dna_vocab.VOCAB_SIZE, dna_vocab.MASK_ID, tuple(ids), dna_vocab.PAD_ID)

    @classmethod
    def generic(
        cls,
        num_tokens: int,
        mask_id: int | None = None,
        pad_id: int | None = None,
        allowed_output_ids: Sequence[int] | None = None,
    ) -> "DiffusionVocab":
        """Generic vocabulary for text or tiny worlds.

        With defaults, tokens ``0..num_tokens-1`` are data, ``[MASK] = num_tokens`` and
        ``size = num_tokens + 1`` (plus one more for padding if ``pad_id`` is given as ``-1``
        meaning "append a pad token"). If ``mask_id`` is given, ``size = num_tokens`` and the
        allowed ids default to every id except mask and pad.
        """
        if mask_id is None:
            size = num_tokens + 1
            mask_id = num_tokens
            if pad_id == -1:
                pad_id = size
                size += 1
        else:
            size = num_tokens
        if allowed_output_ids is None:
            allowed_output_ids = [i for i in range(size) if i not in (mask_id, pad_id)]
        return cls(size, mask_id, tuple(allowed_output_ids), pad_id)

    # ------------------------------------------------------------------ helpers
    @property
    def num_allowed(self) -> int:
        return len(self.allowed_output_ids)

    def allowed_mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """BoolTensor[V]: True at ids the denoiser may predict."""
        return self._allowed_mask.to(device) if device is not None else self._allowed_mask

    def scorable(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """BoolTensor[B, L]: positions that may be noised and are scored.

        A position is scorable iff ``attention_mask`` is true there (default: all) and its clean
        token is an allowed output id (so padding, specials, and disallowed ids such as ``N`` are
        carried as known context).
        """
        ok = self.allowed_mask(x0.device)[x0]
        if attention_mask is not None:
            ok = ok & attention_mask.to(torch.bool)
        return ok
