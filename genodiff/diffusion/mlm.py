"""BERT-style masked language modelling (Caduceus pre-training): the model MDLM fine-tunes.

Of the scorable positions (``DiffusionVocab.scorable``) a fraction ``mask_prob`` (15%) is selected;
of those 80% become ``[MASK]``, 10% a uniformly random allowed token and 10% stay unchanged. The loss
is the cross-entropy on the selected positions only. This is a training objective, not a likelihood
bound: ``nelbo_per_seq`` holds the summed selected-position cross-entropy (nats) so the training loop
can treat every objective alike, and evaluation reports it as "MLM loss", never as bits/base.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genodiff.diffusion.objectives import ObjectiveOutput, _Base, masked_nll
from genodiff.diffusion.process import restricted_log_probs

__all__ = ["MLMConfig", "MLMObjective"]


@dataclass
class MLMConfig:
    mask_prob: float = 0.15
    replace_with_mask: float = 0.8
    replace_with_random: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if self.replace_with_mask < 0 or self.replace_with_random < 0 or self.replace_with_mask + self.replace_with_random > 1:
            raise ValueError("replace_with_mask + replace_with_random must be within [0, 1]")


class MLMObjective(_Base):
    """Masked-LM loss on the shared objective interface (``is_likelihood = False``)."""

    is_likelihood = False
    config_class = MLMConfig

    def corrupt(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 LongTensor[B, L] -> (corrupted input LongTensor[B, L], selected BoolTensor[B, L])."""
        cfg = self.config
        scored = self.vocab.scorable(x0, attention_mask)
        u = torch.rand(x0.shape, generator=generator, device=x0.device)
        selected = scored & (u < cfg.mask_prob)
        v = torch.rand(x0.shape, generator=generator, device=x0.device)
        allowed = torch.tensor(self.vocab.allowed_output_ids, device=x0.device)
        random_tokens = allowed[torch.randint(len(allowed), x0.shape, generator=generator, device=x0.device)]
        x_in = torch.where(selected & (v < cfg.replace_with_mask), torch.full_like(x0, self.vocab.mask_id), x0)
        use_random = selected & (v >= cfg.replace_with_mask) & (v < cfg.replace_with_mask + cfg.replace_with_random)
        x_in = torch.where(use_random, random_tokens, x_in)
        return x_in, selected

    def loss(self, x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        if x_t is None:
            x_t, selected = self.corrupt(x0, attention_mask, generator)
        else:
            selected = (x_t != x0) & self.vocab.scorable(x0, attention_mask)
        nll = masked_nll(restricted_log_probs(den(x_t, None), self.vocab), x0, selected)
        return ObjectiveOutput(nelbo_per_seq=nll.sum(-1), num_tokens=selected.sum(-1), token_nll_sum=nll.sum(-1),
                               num_masked=selected.sum(-1), per_token=nll, t=None)
