"""Exhaustive tiny worlds for verifying the diffusion core (used by tests/diffusion).

A :class:`TinyWorld` is a vocabulary of ``K`` data tokens (ids ``0..K-1``, ``[MASK] = K``), a
length ``L`` and an explicit joint distribution ``p(x)`` over all ``K**L`` sequences. It builds the
*exact* denoiser ``E[x0 | z_t]``: for every partially masked ``z`` the conditional marginals
``p(x^l = v | x^{unmasked} = z^{unmasked})`` (time-independent for the masking process), by
enumeration. Keep ``K**L`` small (<= a few thousand).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from genodiff.diffusion.vocab import DiffusionVocab

__all__ = ["TinyWorld"]


class TinyWorld:
    """Explicit joint distribution over ``K**L`` sequences; see module docstring.

    Args:
        probs: FloatTensor[K**L] (normalized here), indexed like :meth:`all_sequences`.
        num_tokens: K. length: L.
    """

    def __init__(self, probs: torch.Tensor, num_tokens: int, length: int):
        self.K, self.L = int(num_tokens), int(length)
        probs = torch.as_tensor(probs, dtype=torch.float64)
        assert probs.numel() == self.K ** self.L
        self.probs = probs / probs.sum()
        self.vocab = DiffusionVocab.generic(self.K)
        self.mask_id = self.vocab.mask_id
        self.sequences = torch.tensor(list(itertools.product(range(self.K), repeat=self.L)), dtype=torch.long)
        self._table = self._build_table()

    @classmethod
    def random(cls, num_tokens: int, length: int, seed: int = 0, concentration: float = 0.5) -> "TinyWorld":
        rng = np.random.default_rng(seed)
        p = rng.dirichlet(np.full(num_tokens ** length, concentration))
        p = np.maximum(p, 1e-4)  # keep every sequence possible (finite conditionals everywhere)
        return cls(torch.tensor(p), num_tokens, length)

    # ------------------------------------------------------------------ indexing
    def seq_index(self, x: torch.Tensor) -> torch.Tensor:
        """LongTensor[..., L] over ``0..K-1`` -> LongTensor[...] index into ``probs``."""
        w = self.K ** torch.arange(self.L - 1, -1, -1, device=x.device)
        return (x * w).sum(-1)

    def state_index(self, z: torch.Tensor) -> torch.Tensor:
        """LongTensor[..., L] over ``0..K`` (K = mask) -> index into the ``(K+1)**L`` state table."""
        w = (self.K + 1) ** torch.arange(self.L - 1, -1, -1, device=z.device)
        return (z * w).sum(-1)

    def _build_table(self) -> torch.Tensor:
        K, L = self.K, self.L
        states = torch.tensor(list(itertools.product(range(K + 1), repeat=L)), dtype=torch.long)  # [S, L]
        x = self.sequences  # [N, L]
        compat = ((states[:, None, :] == K) | (states[:, None, :] == x[None])).all(-1)  # [S, N]
        joint = compat.double() * self.probs[None]  # [S, N]
        onehot = torch.nn.functional.one_hot(x, K).double()  # [N, L, K]
        marg = torch.einsum("sn,nlk->slk", joint, onehot)
        marg = marg / marg.sum(-1, keepdim=True)
        table = torch.full((states.shape[0], L, K + 1), float("-inf"), dtype=torch.float64)
        table[..., :K] = torch.log(marg)
        return table

    # ------------------------------------------------------------------ denoisers
    def conditional_log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """FloatTensor[B, L, K+1] float64: log p(x^l = v | unmasked part of z); -inf at [MASK]."""
        return self._table.to(z.device)[self.state_index(z)]

    def denoiser(self, z: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The exact denoiser E[x0 | z_t] as logits (float64)."""
        return self.conditional_log_probs(z)

    def ar_denoiser(self, inputs: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Exact AR model for inputs ``[bos, x^0 .. x^{L-2}]``: logits at l = log p(x^l | x^{<l})."""
        B, L = inputs.shape
        out = torch.empty(B, L, self.K + 1, dtype=torch.float64)
        for l in range(L):
            z = torch.full_like(inputs, self.mask_id)
            z[:, :l] = inputs[:, 1 : l + 1]
            out[:, l] = self.conditional_log_probs(z)[:, l]
        return out

    # ------------------------------------------------------------------ exact quantities
    def masked_patterns(self) -> torch.Tensor:
        """BoolTensor[2**L, L]: every subset of positions."""
        return torch.tensor(list(itertools.product([False, True], repeat=self.L)), dtype=torch.bool)

    def conditional(self, known: torch.Tensor, known_mask: torch.Tensor) -> torch.Tensor:
        """p(x | x_K = known_K) over all sequences (FloatTensor[K**L], float64)."""
        ok = ((self.sequences == known[None]) | ~known_mask[None]).all(-1)
        p = self.probs * ok
        return p / p.sum()
