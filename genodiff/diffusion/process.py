"""Forward masking process, time sampling and the SUBS parameterization.

Shapes: ``x0``, ``x_t`` are LongTensor[B, L]; ``t`` is FloatTensor[B] in [0, 1]; logits are
FloatTensor[B, L, V]. All log-probabilities are natural logs (nats) computed in float32 or wider
(float16/bfloat16 logits are upcast to float32 first); excluded ids get ``-inf`` (never a large
negative constant, which overflows in float16).

SUBS (MDLM Sec. 3.2.3): the denoiser output ``x_theta(z_t)`` is modified so that
(i) *zero masking probability*: no mass on ``[MASK]`` (nor on ids outside
``vocab.allowed_output_ids``); (ii) *carry-over unmasking*: an unmasked position of ``z_t`` keeps its
token with probability 1 (so it contributes exactly zero loss and receives no gradient).
"""

from __future__ import annotations

import math

import torch

from genodiff.diffusion.schedules import NoiseSchedule
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.ops.precision import compute_dtype

__all__ = [
    "uniform_times",
    "stratified_times",
    "apply_sampling_eps",
    "discrete_times",
    "mask_tokens",
    "restricted_log_probs",
    "subs_log_probs",
    "carry_over",
    "compute_dtype",
    "sedd_log_q",
]


def uniform_times(batch_size: int, *, generator: torch.Generator | None = None, device=None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """FloatTensor[B]: i.i.d. U[0, 1) times."""
    return torch.rand(batch_size, generator=generator, device=device, dtype=dtype)


def stratified_times(
    local_batch_size: int,
    global_batch_size: int | None = None,
    offset: int = 0,
    *,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Stratified ("antithetic") U[0,1) times for one micro-batch of a global batch.

    The global batch of ``G = global_batch_size`` sequences (all devices x all accumulation steps)
    is split into ``G`` strata ``[k/G, (k+1)/G)``; this micro-batch holds global indices
    ``offset .. offset + local_batch_size - 1`` and gets ``t_j = (offset + j + u_j) / G`` with
    ``u_j ~ U[0,1)`` i.i.d. Each t_j is marginally U[0,1) when averaged over offsets, and the
    global batch covers [0,1) evenly, which lowers the variance of the batch-mean NELBO.

    Typical use in training: ``offset = (accum_step * world_size + rank) * local_batch_size`` and
    ``G = local_batch_size * world_size * accumulation_steps``. Different ranks may use independent
    generators. With ``global_batch_size=None`` the micro-batch is stratified on its own.

    Returns FloatTensor[local_batch_size].
    """
    g = local_batch_size if global_batch_size is None else int(global_batch_size)
    if offset < 0 or offset + local_batch_size > g:
        raise ValueError(f"micro-batch [{offset}, {offset + local_batch_size}) outside global batch of {g}")
    u = torch.rand(local_batch_size, generator=generator, device=device, dtype=dtype)
    k = torch.arange(offset, offset + local_batch_size, device=device, dtype=dtype)
    return ((k + u) / g).clamp(max=1.0)


def apply_sampling_eps(u: torch.Tensor, sampling_eps: float) -> torch.Tensor:
    """Map U[0,1) times to U[sampling_eps, 1): ``t = eps + (1 - eps) u``."""
    return sampling_eps + (1.0 - sampling_eps) * u


def discrete_times(u: torch.Tensor, num_timesteps: int) -> torch.Tensor:
    """Map U[0,1) draws to the step times ``i / T`` of a T-step process, ``i = floor(u T) + 1`` in 1..T."""
    T = num_timesteps
    return (torch.floor(u * T).clamp(max=T - 1) + 1) / T


def mask_tokens(
    x0: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    vocab: DiffusionVocab,
    noise_mask: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``z_t ~ q(z_t | x0)``: each noisable position is masked independently w.p. ``1 - alpha_t``.

    Args:
        x0: LongTensor[B, L] clean tokens.
        t: FloatTensor[B] times.
        noise_mask: BoolTensor[B, L], positions that may be masked (default
            ``vocab.scorable(x0)``); padding must be False here and is never noised.
    Returns:
        ``(x_t, masked)``: LongTensor[B, L] and BoolTensor[B, L] (True where ``x_t == [MASK]``
        because of the noise).
    """
    if noise_mask is None:
        noise_mask = vocab.scorable(x0)
    p = schedule.mask_prob(t).to(torch.float64)
    u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
    masked = (u < p[:, None]) & noise_mask
    return torch.where(masked, torch.full_like(x0, vocab.mask_id), x0), masked


def restricted_log_probs(logits: torch.Tensor, vocab: DiffusionVocab, extra_allowed: tuple[int, ...] = ()) -> torch.Tensor:
    """log-softmax over ``vocab.allowed_output_ids`` (plus ``extra_allowed``), ``-inf`` elsewhere.

    FloatTensor[B, L, V] (float32 or wider) -> same shape, nats. This is SUBS "zero masking
    probability" alone (no carry-over).
    """
    return torch.log_softmax(_restricted_logits(logits, vocab, extra_allowed), dim=-1)


def _restricted_logits(logits: torch.Tensor, vocab: DiffusionVocab,
                       extra_allowed: tuple[int, ...] = ()) -> torch.Tensor:
    """Logits in float32 or wider with ``-inf`` outside ``vocab.allowed_output_ids`` (plus ``extra_allowed``)."""
    logits = logits.to(compute_dtype(logits.dtype))
    allowed = vocab.allowed_mask(logits.device)
    if extra_allowed:
        allowed = allowed.clone()
        allowed[list(extra_allowed)] = True
    return logits.masked_fill(~allowed, float("-inf"))


def subs_log_probs(logits: torch.Tensor, x_t: torch.Tensor, vocab: DiffusionVocab) -> torch.Tensor:
    """Full SUBS parameterization: ``log x_theta(z_t)`` as FloatTensor[B, L, V] (nats).

    Masked positions: log-softmax over allowed ids. Unmasked positions: 0 at ``x_t[b, l]``,
    ``-inf`` elsewhere (carry-over), independent of the logits (no gradient).
    """
    return carry_over(restricted_log_probs(logits, vocab), x_t, vocab)


def carry_over(logp: torch.Tensor, x_t: torch.Tensor, vocab: DiffusionVocab) -> torch.Tensor:
    """SUBS carry-over unmasking: ``logp`` [B, L, V] at masked positions of ``x_t``; at unmasked ones 0 at
    ``x_t[b, l]`` and ``-inf`` elsewhere (independent of ``logp``, so no gradient)."""
    carry = torch.full_like(logp, float("-inf"))
    carry.scatter_(-1, x_t.unsqueeze(-1), 0.0)
    is_mask = (x_t == vocab.mask_id).unsqueeze(-1)
    return torch.where(is_mask, logp, carry)


def sedd_log_q(logits: torch.Tensor, vocab: DiffusionVocab, scale_by_num_allowed: bool = True) -> torch.Tensor:
    """SEDD parameterization: unnormalized log clean-token weights ``log q`` [B, L, V] (float32+).

    ``-inf`` outside allowed ids; minus ``log(#allowed)`` when ``scale_by_num_allowed`` so that zero
    logits give total mass 1. The concrete score is ``q * alpha_t / (1 - alpha_t)``.
    """
    l = _restricted_logits(logits, vocab)
    return l - math.log(vocab.num_allowed) if scale_by_num_allowed else l
