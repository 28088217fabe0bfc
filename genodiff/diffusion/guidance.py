"""Guidance for masked diffusion: classifier-free guidance and classifier guidance, as denoiser wrappers.

Both guide the SUBS reverse step through the clean-token distribution ``x_theta(z_t)`` it draws revealed
tokens from; the unmasking schedule (which positions unmask between t and s) stays the model's. A guided
denoiser is an ordinary denoiser ``(x_t LongTensor[B, L], t FloatTensor[B] | None) -> logits[B, L, V]``
(float64 log-probabilities, ``-inf`` outside ``vocab.allowed_output_ids``), so every sampler of
:mod:`genodiff.diffusion.sampling` that draws tokens from ``x_theta`` takes it unchanged: ancestral, cached
(the guided output depends on ``z_t`` only when the parts do), first-hitting (and AR for a labelled AR
model). SEDD's analytic sampler reads the logits as unnormalised scores, where this tilt is not defined.

Convention: guidance scale ``w >= 0`` and exponent ``gamma = 1 + w``; ``w = 0`` is the conditional model.

* Classifier-free guidance (Ho & Salimans 2022; for masked diffusion Schiff et al. 2024, arXiv 2412.10193,
  whose reference code tilts ``x_theta`` of the absorbing process the same way)::

      log x_w(v | z_t, y) = (1 + w) log x_theta(v | z_t, y) - w log x_theta(v | z_t, null) - log Z(z_t)

  renormalised over the allowed tokens (``Z``), per position. ``w = 0`` returns the conditional denoiser's
  own logits (bit for bit: no arithmetic is applied). ``null`` is the label-dropout label of the model.

* Classifier guidance (Nisonoff et al. 2024, "Unlocking Guidance for Discrete State-Space Diffusion";
  Schiff et al. 2024) with a noise-aware classifier ``p_phi(y | z)`` (trained on masked ``x_t``)::

      log x_w(v | z_t) = log x_theta(v | z_t) + (1 + w) log p_phi(y | z_t^{l <- v}) - log Z(z_t)

  where ``z_t^{l <- v}`` is ``z_t`` with masked position ``l`` set to ``v`` (one position changes; the others
  stay as in ``z_t``). ``mode="exact"`` evaluates the classifier on every candidate (``|masked| x |allowed|``
  sequences per call); ``mode="first_order"`` uses the first-order Taylor expansion in the one-hot input,
  ``log p(y | z^{l <- v}) ~ log p(y | z) + g[l, v] - g[l, z_l]`` with ``g = d log p(y | onehot(z)) / d onehot``
  (one forward and one backward pass; Nisonoff et al. Sec. 4.2, the ``use_approx`` path of Schiff et al.);
  ``mode="auto"`` uses exact re-weighting while the call has at most ``max_exact_candidates`` candidates and
  the first-order approximation otherwise (:attr:`ClassifierGuidance.stats` counts both).

  Why ``x_theta`` and not the whole step: with ``gamma = 1`` and a classifier consistent with the model
  (``sum_v x_theta(v) p(y | z^{l <- v}) = p(y | z)``), Nisonoff et al.'s exact guided rates keep the model's
  unmasking rate and reveal ``v`` with probability proportional to ``x_theta(v) p(y | z^{l <- v})``, which is
  this tilt; the reference code of Schiff et al. re-weights the stay-masked option by ``p(y | z_t)^gamma`` as
  well, which for ``gamma != 1`` or an imperfect classifier also changes how fast positions unmask (Rojas et
  al. 2025, arXiv 2507.08965). Here the schedule is the model's and only the revealed token is guided.
  A masking process loses no information about the time beyond the mask pattern, so the exact
  ``p(y | z_t, t) = p(y | z_t)`` does not depend on ``t``: the classifier is called without it.

What guidance samples: with ``w = 0`` CFG is exactly the conditional model and exact-mode CG with a Bayes-
consistent classifier is exactly the model conditioned on ``y`` (``x_theta(v | z, y)``, by Bayes' rule).
For ``w > 0`` neither samples the tilted distribution ``p(x | y) p(y | x)^w``: each step tilts the
one-position marginals of a partly masked state, and products of tilted conditionals are not the
conditionals of the tilted joint. Guidance trades diversity for class fidelity; it is not exact sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from genodiff.diffusion.process import restricted_log_probs
from genodiff.diffusion.vocab import DiffusionVocab

__all__ = [
    "GUIDANCE_MODES",
    "drop_labels",
    "cfg_log_probs",
    "tilt_log_probs",
    "candidate_log_probs_exact",
    "candidate_log_probs_first_order",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "GuidanceStats",
]

GUIDANCE_MODES = ("exact", "first_order", "auto")

#: ``(x_t LongTensor[B, L], t FloatTensor[B] | None, labels LongTensor[B]) -> logits[B, L, V]``
LabelledDenoiser = Callable[[torch.Tensor, Optional[torch.Tensor], torch.Tensor], torch.Tensor]
#: ``(x LongTensor[N, L]) -> log p(y | x) FloatTensor[N]`` for the target class y
ClassLogProb = Callable[[torch.Tensor], torch.Tensor]
#: ``(onehot FloatTensor[N, L, V]) -> log p(y | onehot) FloatTensor[N]``, differentiable
OneHotClassLogProb = Callable[[torch.Tensor], torch.Tensor]

#: unconditional log-probabilities are floored here (log of the smallest normal float64) before the -w factor
_LOG_FLOOR = math.log(torch.finfo(torch.float64).tiny)


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not scale >= 0 or scale == float("inf"):
        raise ValueError(f"guidance scale must be a finite number >= 0, got {scale}")
    return scale


def drop_labels(labels: torch.Tensor, null_label: int, p: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Label dropout for classifier-free guidance training: each label becomes ``null_label`` independently with
    probability ``p`` (one float64 uniform per label from ``generator``), so one model learns both
    ``x_theta(. | z, y)`` and ``x_theta(. | z, null)``. LongTensor[B] -> LongTensor[B] (a new tensor)."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"label dropout must be a probability in [0, 1], got {p}")
    u = torch.rand(labels.shape, generator=generator, dtype=torch.float64, device=labels.device)
    return torch.where(u < float(p), torch.full_like(labels, int(null_label)), labels)


def cfg_log_probs(cond_logits: torch.Tensor, uncond_logits: torch.Tensor, vocab: DiffusionVocab,
                  scale: float) -> torch.Tensor:
    """Classifier-free guided log-probabilities (module docstring), float64 [..., V], ``-inf`` off the vocabulary.

    ``cond_logits`` / ``uncond_logits``: [..., V] raw logits of the conditional / null-label model. Tokens the
    conditional model rules out stay ruled out; the unconditional log-probabilities are floored at
    ``log(tiny float64)`` so a token it rules out cannot get infinite weight.
    """
    w = _check_scale(scale)
    lc = restricted_log_probs(cond_logits.to(torch.float64), vocab)
    lu = restricted_log_probs(uncond_logits.to(torch.float64), vocab).clamp(min=_LOG_FLOOR)
    mixed = torch.where(torch.isfinite(lc), (1.0 + w) * lc - w * lu, torch.full_like(lc, float("-inf")))
    return torch.log_softmax(mixed, dim=-1)


def tilt_log_probs(logits: torch.Tensor, candidate_log_probs: torch.Tensor, vocab: DiffusionVocab,
                   gamma: float) -> torch.Tensor:
    """``log_softmax(log x_theta + gamma * log p(y | z^{l <- v}))`` over the allowed tokens, float64 [B, L, V].

    ``candidate_log_probs``: [B, L, V] ``log p(y | z^{l <- v})`` (finite where used; other entries ignored).
    """
    lp = restricted_log_probs(logits.to(torch.float64), vocab)
    tilt = torch.where(torch.isfinite(lp), gamma * candidate_log_probs.to(torch.float64), torch.zeros_like(lp))
    return torch.log_softmax(lp + tilt, dim=-1)


def candidate_log_probs_exact(x_t: torch.Tensor, vocab: DiffusionVocab, log_prob: ClassLogProb,
                              batch_size: int = 256) -> tuple[torch.Tensor, int]:
    """``log p(y | z^{l <- v})`` for every masked position l and allowed token v, by evaluating the classifier
    on each candidate sequence. Returns ``(FloatTensor[B, L, V] float64, number of classifier inputs)``;
    entries at unmasked positions or other tokens are 0 (unused)."""
    B, L = x_t.shape
    out = torch.zeros((B, L, vocab.size), dtype=torch.float64, device=x_t.device)
    rows, pos = torch.nonzero(x_t == vocab.mask_id, as_tuple=True)
    allowed = torch.tensor(vocab.allowed_output_ids, dtype=torch.long, device=x_t.device)
    if rows.numel() == 0:
        return out, 0
    A = allowed.numel()
    rr, pp = rows.repeat_interleave(A), pos.repeat_interleave(A)
    vv = allowed.repeat(rows.numel())
    values = []
    for s in range(0, rr.numel(), batch_size):
        r, p, v = rr[s:s + batch_size], pp[s:s + batch_size], vv[s:s + batch_size]
        cand = x_t[r].clone()
        cand[torch.arange(r.numel(), device=x_t.device), p] = v
        values.append(log_prob(cand).to(torch.float64).reshape(-1))
    out[rr, pp, vv] = torch.cat(values)
    return out, int(rr.numel())


def candidate_log_probs_first_order(x_t: torch.Tensor, vocab: DiffusionVocab,
                                    onehot_log_prob: OneHotClassLogProb) -> torch.Tensor:
    """First-order estimate of ``log p(y | z^{l <- v})``: ``log p(y | z) + g[l, v] - g[l, z_l]`` with ``g`` the
    gradient of ``log p(y | onehot)`` at ``onehot(z_t)`` (float32 one-hot over the V ids). FloatTensor[B, L, V]
    float64; exact when ``log p(y | .)`` is affine in the one-hot input."""
    with torch.enable_grad():
        onehot = torch.nn.functional.one_hot(x_t, vocab.size).to(torch.float32).requires_grad_(True)
        lp = onehot_log_prob(onehot).reshape(-1)
        (grad,) = torch.autograd.grad(lp.sum(), onehot)
    grad = grad.to(torch.float64)
    at_current = grad.gather(-1, x_t.unsqueeze(-1))
    return lp.detach().to(torch.float64)[:, None, None] + grad - at_current


class ClassifierFreeGuidance:
    """Classifier-free guided denoiser ``(x_t, t) -> float64 log-probs`` (module docstring).

    Args:
        denoiser: labelled denoiser ``(x_t, t, labels LongTensor[B]) -> logits[B, L, V]``.
        vocab: the diffusion vocabulary. label: target class id (int or LongTensor[B]).
        null_label: the model's null (label-dropout) id. scale: ``w >= 0``.
    With ``w = 0`` a call is ``denoiser(x_t, t, label)`` itself (one denoiser call); otherwise the
    conditional and null-label predictions come from one call on the doubled batch ``[x_t; x_t]``.
    """

    def __init__(self, denoiser: LabelledDenoiser, vocab: DiffusionVocab, label, null_label: int, scale: float):
        self.denoiser, self.vocab = denoiser, vocab
        self.label, self.null_label = label, int(null_label)
        self.scale = _check_scale(scale)

    def _labels(self, batch: int, device) -> torch.Tensor:
        return torch.as_tensor(self.label, dtype=torch.long, device=device).reshape(-1).expand(batch)

    def __call__(self, x_t: torch.Tensor, t: Optional[torch.Tensor]) -> torch.Tensor:
        B = x_t.shape[0]
        labels = self._labels(B, x_t.device)
        if self.scale == 0.0:
            return self.denoiser(x_t, t, labels)
        both = self.denoiser(torch.cat([x_t, x_t]), None if t is None else torch.cat([t, t]),
                             torch.cat([labels, torch.full_like(labels, self.null_label)]))
        return cfg_log_probs(both[:B], both[B:], self.vocab, self.scale)


@dataclass
class GuidanceStats:
    """What a :class:`ClassifierGuidance` did: denoiser calls guided exactly / to first order, and the number
    of classifier inputs evaluated (candidates in exact mode, one per sequence in first-order mode)."""

    exact_calls: int = 0
    first_order_calls: int = 0
    classifier_inputs: int = 0

    def as_dict(self) -> dict:
        return {"exact_calls": self.exact_calls, "first_order_calls": self.first_order_calls,
                "classifier_inputs": self.classifier_inputs}


class ClassifierGuidance:
    """Classifier-guided denoiser ``(x_t, t) -> float64 log-probs`` (module docstring).

    Args:
        denoiser: the (unconditional) denoiser ``(x_t, t) -> logits``.
        vocab: the diffusion vocabulary.
        log_prob: ``x LongTensor[N, L] -> log p_phi(y | x)`` [N] for the target class (exact mode).
        scale: ``w >= 0``; the classifier enters with exponent ``gamma = 1 + w``.
        mode: ``exact``, ``first_order`` or ``auto`` (exact up to ``max_exact_candidates`` candidates per call).
        onehot_log_prob: ``onehot FloatTensor[N, L, V] -> log p_phi(y | onehot)`` [N], differentiable
            (first-order mode).
        batch_size: classifier inputs per forward pass in exact mode.
    """

    def __init__(self, denoiser, vocab: DiffusionVocab, log_prob: ClassLogProb, scale: float, mode: str = "auto",
                 onehot_log_prob: OneHotClassLogProb | None = None, batch_size: int = 256,
                 max_exact_candidates: int = 4096):
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"classifier guidance mode must be one of {GUIDANCE_MODES}, got {mode!r}")
        if mode != "exact" and onehot_log_prob is None:
            raise ValueError(f"classifier guidance mode {mode!r} needs onehot_log_prob (first-order approximation)")
        self.denoiser, self.vocab, self.log_prob = denoiser, vocab, log_prob
        self.onehot_log_prob = onehot_log_prob
        self.scale = _check_scale(scale)
        self.mode, self.batch_size = mode, int(batch_size)
        self.max_exact_candidates = int(max_exact_candidates)
        self.stats = GuidanceStats()

    def candidate_log_probs(self, x_t: torch.Tensor) -> torch.Tensor:
        """``log p(y | z^{l <- v})`` [B, L, V] by this object's mode (counted in :attr:`stats`)."""
        n_candidates = int((x_t == self.vocab.mask_id).sum()) * len(self.vocab.allowed_output_ids)
        exact = self.mode == "exact" or (self.mode == "auto" and n_candidates <= self.max_exact_candidates)
        if exact:
            values, n = candidate_log_probs_exact(x_t, self.vocab, self.log_prob, self.batch_size)
            self.stats.exact_calls += 1
            self.stats.classifier_inputs += n
            return values
        self.stats.first_order_calls += 1
        self.stats.classifier_inputs += x_t.shape[0]
        return candidate_log_probs_first_order(x_t, self.vocab, self.onehot_log_prob)

    def __call__(self, x_t: torch.Tensor, t: Optional[torch.Tensor]) -> torch.Tensor:
        logits = self.denoiser(x_t, t)
        return tilt_log_probs(logits, self.candidate_log_probs(x_t), self.vocab, 1.0 + self.scale)
