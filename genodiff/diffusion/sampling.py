"""Samplers for masked diffusion (and the AR / SEDD baselines) on one interface.

Every sampler takes a denoiser ``(x_t: LongTensor[B, L], t: FloatTensor[B] | None) -> logits[B, L, V]``,
a :class:`DiffusionVocab`, an initial state (``x_init``, or all ``[MASK]`` except the *known* positions
given by ``known_tokens`` / ``known_mask``, which are carried over unchanged: prefix, suffix or any
infilling pattern), and a ``torch.Generator`` for reproducibility (one front end for all:
:func:`_window_sampler`). It returns :class:`SampleOutput` with the tokens (LongTensor[B, L]) and the
number of denoiser calls it made. A sampler fills one window: sequences longer than the model's context
are generated semi-autoregressively, window by window, by :func:`genodiff.generate.conditioning.fill`.

Non-finite values: a NaN or +inf anywhere in a denoiser output (``-inf`` is how a model rules a token out and
is fine), or a position left with no allowed token, stops sampling with :class:`~genodiff.errors.NonFiniteError`
naming the sampler, the step and the denoiser call; no tokens are returned (the checks draw no random
numbers and change no arithmetic: finite runs are bit-identical to unchecked ones).

Randomness: all categorical draws are inverse-CDF draws from float64 probabilities with float64
uniforms (float32 Gumbel-max truncates the tail and lowers sample entropy); unmasking decisions use
float64 uniforms. Temperature divides the (restricted, SUBS) log-probabilities; nucleus (``top_p``)
keeps the smallest set of most likely tokens with mass >= top_p.

Samplers:

* :func:`ancestral_sample` -- T reverse steps on the grid t_k = k/T (MDLM's SUBS reverse process):
  a masked token unmasks between t and s = t - 1/T with probability
  ``(alpha_s - alpha_t)/(1 - alpha_t)``, to a token drawn from ``x_theta(z_t)``; the last step
  unmasks everything. ``cache=True`` (requires time conditioning off) skips the denoiser (and the
  step) when no token changed since the last call: the samples are bit-identical to the uncached
  sampler for the same seed, with fewer calls (at most one per unmasking step, <= L).
* :func:`first_hitting_sample` -- exact continuous-time simulation (Zheng et al. 2024): with n masked
  tokens at time t the next unmasking time s satisfies ``1 - alpha_s = (1 - alpha_t) u^(1/n)``;
  one uniformly chosen masked position is revealed. Exactly one denoiser call per revealed token
  (at most L).
* :func:`sedd_analytic_sample` -- SEDD's analytic ("Tweedie") sampler for the absorbing process,
  driven by unnormalized scores (see :class:`SEDDObjective`).
* :func:`ar_sample` -- left-to-right sampling for the AR baseline.
* :class:`Sampler` -- dispatch from a :class:`SamplerConfig` (or a plain dict via
  :func:`make_sampler`).

Guidance (class labels; classifier-free or classifier guidance) is a denoiser wrapper,
:mod:`genodiff.diffusion.guidance`: the guided denoiser returns the tilted log-probabilities of ``x_theta``, so
the ancestral, cached, first-hitting and AR samplers run it unchanged (with guidance scale 0 the classifier-free
wrapper returns the conditional denoiser's own output: the samples are bit-identical). The SEDD sampler reads
its logits as unnormalised scores and is not used with guidance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import torch

from genodiff.diffusion.process import sedd_log_q
from genodiff.diffusion.schedules import NoiseSchedule, ScheduleConfig, make_schedule
from genodiff.diffusion.specs import config_from
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import NonFiniteError

__all__ = [
    "SampleOutput",
    "SamplerConfig",
    "Sampler",
    "make_sampler",
    "token_probs",
    "sample_categorical",
    "initial_state",
    "ancestral_sample",
    "dilated_order",
    "ORDERS",
    "first_hitting_sample",
    "sedd_analytic_sample",
    "ar_sample",
]

Denoiser = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass
class SampleOutput:
    """``tokens``: LongTensor[B, L]; ``num_denoiser_calls``: forward passes made; ``num_steps``:
    reverse steps taken (for first-hitting: tokens revealed)."""

    tokens: torch.Tensor
    num_denoiser_calls: int
    num_steps: int


# ------------------------------------------------------------------------------------ primitives
def token_probs(logits: torch.Tensor, vocab: DiffusionVocab, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """Clean-token distribution ``x_theta`` over allowed ids, float64 [..., V] (SUBS zero-masking).

    ``temperature`` scales the log-probabilities (``p^(1/T)`` renormalized); ``top_p < 1`` applies
    nucleus filtering (the top token is always kept).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    lp = logits.to(torch.float64).masked_fill(~vocab.allowed_mask(logits.device), float("-inf"))
    p = torch.softmax(lp / temperature, dim=-1)
    if top_p < 1.0:
        sp, idx = torch.sort(p, dim=-1, descending=True)
        before = torch.cumsum(sp, -1) - sp  # mass strictly above this token
        keep_sorted = before < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)
        p = torch.where(keep, p, torch.zeros((), dtype=p.dtype, device=p.device))
        p = p / p.sum(-1, keepdim=True)
    return p


def sample_categorical(probs: torch.Tensor, u: torch.Tensor, *, context: str | None = None) -> torch.Tensor:
    """Inverse-CDF draw: probs [..., V] (float64, rows summing to ~1), u [...] ~ U[0,1) float64.

    Returns LongTensor[...] with ``P(i) = probs[i] / sum(probs)`` exactly up to float64 rounding;
    a zero-probability id is never returned. A row whose total is NaN, infinite or 0 (nothing to draw
    from) raises :class:`~genodiff.errors.NonFiniteError` (``context`` prefixes its message).
    """
    probs = probs.to(torch.float64)
    cdf = torch.cumsum(probs, dim=-1)
    total = cdf[..., -1]
    bad = ~((total > 0) & (total < float("inf")))  # NaN compares False
    if bool(bad.any()):
        where = f"{context}: " if context else ""
        raise NonFiniteError(f"{where}{int(bad.sum())} of {bad.numel()} rows of token probabilities are NaN, "
                             "infinite or all zero (no token to draw)")
    v = (u.to(torch.float64) * cdf[..., -1]).unsqueeze(-1)
    idx = (cdf <= v).sum(-1)
    # u * total can round up to total: fall back to the last id with positive probability
    V = probs.shape[-1]
    last_pos = (V - 1) - torch.argmax(torch.flip(probs > 0, dims=[-1]).to(torch.uint8), dim=-1)
    return torch.minimum(idx, last_pos)


def _check_logits(logits: torch.Tensor, method: str, step: int, num_steps: int, t: float | None, call: int) -> str:
    """Raise :class:`NonFiniteError` when ``logits`` hold a NaN or +inf anywhere; return the context line
    (``"<method> sampler, step i of n (t=...), denoiser call c"``) for the draws of this step."""
    time = f" (t={t:.4g})" if t is not None else ""
    context = f"{method} sampler, step {step} of {num_steps}{time}, denoiser call {call}"
    if not bool(logits.amax() < float("inf")):  # NaN propagates through amax and compares False
        raise NonFiniteError(f"{context}: the denoiser returned NaN or +inf logits; sampling stopped, "
                             "no sequences were produced (are the model's weights finite?)")
    return context


def initial_state(batch_size: int, length: int, vocab: DiffusionVocab, known_tokens: torch.Tensor | None = None,
                  known_mask: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """LongTensor[B, L]: ``[MASK]`` everywhere except known positions (``known_mask`` True), which
    hold ``known_tokens`` (both [B, L] or [L], broadcast over the batch)."""
    z = torch.full((batch_size, length), vocab.mask_id, dtype=torch.long, device=device)
    if known_tokens is not None:
        km = torch.ones_like(z, dtype=torch.bool) if known_mask is None else known_mask.to(torch.bool).expand(batch_size, length)
        z = torch.where(km, known_tokens.to(z.device).expand(batch_size, length), z)
    return z


def _check_generator(generator, device=None):
    if generator is None:
        generator = torch.Generator(device=device if device is not None else "cpu")
        generator.seed()
    return generator


def _window_sampler(core: Callable[..., SampleOutput]) -> Callable[..., SampleOutput]:
    """The front end every sampler shares, around ``core(denoiser, vocab, z, generator, **options)``.

    The sampler it returns is called ``(denoiser, vocab, batch_size=None, length=None, *, x_init=None,
    known_tokens=None, known_mask=None, generator=None, device=None, **options)``: ``x_init``
    (LongTensor[B, L] with ``[MASK]`` at unknown positions; copied) is the initial state ``z``, else
    :func:`initial_state` builds it from batch_size/length/known_*; without ``generator`` a randomly
    seeded one (on ``z``'s device) is used. ``options`` are the core's keyword arguments.
    """

    def sampler(denoiser: Denoiser, vocab: DiffusionVocab, batch_size: int | None = None, length: int | None = None,
                *, x_init: torch.Tensor | None = None, known_tokens: torch.Tensor | None = None,
                known_mask: torch.Tensor | None = None, generator: torch.Generator | None = None, device=None,
                **options) -> SampleOutput:
        z = x_init.clone() if x_init is not None else initial_state(batch_size, length, vocab, known_tokens,
                                                                     known_mask, device)
        return core(denoiser, vocab, z, _check_generator(generator, z.device), **options)

    functools.update_wrapper(sampler, core, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    del sampler.__wrapped__  # help() and inspect.signature show the front end; the docstring the options
    return sampler


# ------------------------------------------------------------------------------------ ancestral
#: reveal orders of the ancestral / cached sampler
ORDERS = ("random", "dilated")


def _reveal_ratio(schedule: NoiseSchedule, num_steps: int, device=None) -> torch.Tensor:
    """``r_k = (1 - alpha_{k/T}) / (1 - alpha_1)`` for k = 0..T (float64 [T + 1], increasing, ``r_T = 1``): a
    masked position is still masked after the steps T..k+1 with probability ``r_k``."""
    grid = torch.arange(num_steps + 1, dtype=torch.float64, device=device) / num_steps
    m = schedule.mask_prob(grid)
    ratio = (m / m[-1]).contiguous()
    ratio[-1] = 1.0
    return ratio


def _unmask_steps(levels: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """The step k in 1..T at which a position with level ``u`` in [0, 1) unmasks: ``r_{k-1} <= u < r_k``
    (steps run from T down to 1; the last one, k = 1, takes everything left). LongTensor like ``levels``."""
    return torch.searchsorted(ratio, levels.contiguous(), right=True).clamp(min=1, max=ratio.numel() - 1)


def dilated_order(length: int, device=None) -> torch.Tensor:
    """The coarse-to-fine order of positions 0..length-1: LongTensor[length], ``order[j]`` = the position
    revealed j-th.

    Positions are visited in bit-reversal (van der Corput) order over the next power of two, skipping those
    >= length: 0, L/2, L/4, 3L/4, L/8, ... When length is a power of two, every aligned block of 2^m
    consecutive ranks is one residue class modulo L / 2^m: positions exactly L / 2^m apart. Other lengths, and
    runs of ranks that straddle such blocks, are spread less evenly (see :func:`ancestral_sample`)."""
    bits = max(1, (max(length, 1) - 1).bit_length())
    j = torch.arange(2 ** bits, device=device)
    rev = torch.zeros_like(j)
    for b in range(bits):
        rev |= ((j >> b) & 1) << (bits - 1 - b)
    return rev[rev < length]


def _dilated_unmask_levels(masked: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Levels for ``order="dilated"`` (float64 like ``masked`` [B, L]): the masked position of rank j among a
    row's n masked positions gets ``1 - (j + 1/2)/n``; ranks follow :func:`dilated_order` shifted cyclically
    by ``offsets`` [B] (position p ranks where ``(p + offset) mod L`` does). Known positions get 0 (unused)."""
    B, L = masked.shape
    rank = torch.empty(L, dtype=torch.long, device=masked.device)
    rank[dilated_order(L, masked.device)] = torch.arange(L, device=masked.device)
    shifted = (torch.arange(L, device=masked.device)[None, :] + offsets[:, None]) % max(L, 1)
    key = torch.where(masked, rank[shifted], torch.full_like(shifted, L))  # known positions sort last
    by_rank = torch.argsort(key, dim=-1)
    rank_among_masked = torch.empty_like(by_rank).scatter_(-1, by_rank, torch.arange(L, device=masked.device)
                                                           .expand(B, L).contiguous())
    n = masked.sum(-1, keepdim=True).clamp(min=1).to(torch.float64)
    levels = _planned_levels(rank_among_masked, n)
    return torch.where(masked, levels, torch.zeros((), dtype=torch.float64, device=masked.device))


def _planned_levels(rank: torch.Tensor, n) -> torch.Tensor:
    """The level of rank j among n positions revealed in a planned order: ``1 - (j + 1/2)/n`` (float64), so
    that each step reveals the schedule's share of them (:func:`_unmask_steps`)."""
    return 1.0 - (rank.to(torch.float64) + 0.5) / n


@_window_sampler
def ancestral_sample(denoiser: Denoiser, vocab: DiffusionVocab, z: torch.Tensor, generator: torch.Generator, *,
                     schedule: NoiseSchedule | None = None, num_steps: int = 1000, cache: bool = False,
                     time_conditioning: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                     order: str = "random") -> SampleOutput:
    """MDLM ancestral sampling with the SUBS reverse process (see module docstring).

    Randomness (``order="random"``): two float64 uniforms per position are drawn up front. ``u_unmask`` fixes
    the step at which a masked position unmasks: surviving masked from t=1 to s has probability
    ``(1 - alpha_s)/(1 - alpha_1)`` (the per-step probabilities ``(1-alpha_s)/(1-alpha_t)``
    telescope), so "unmask in step t -> s iff ``r_s <= u < r_t``" with ``r = (1-alpha)/(1-alpha_1)``
    has exactly the law of the per-step Bernoulli draws; the last step reveals everything left.
    ``u_token`` draws the token from ``x_theta(z_t)`` at that step. Hence the trajectory for a given
    seed does not depend on ``cache``: the uncached sampler calls the denoiser at every step while
    any token is masked; the cached one only at steps where some token unmasks (the state has
    changed since the previous call), and skips the other steps without any work.

    ``order="dilated"`` replaces the random reveal times by a planned order (:func:`dilated_order`): each row's
    masked positions are ranked coarse to fine (bit-reversal order of the positions, cyclically shifted by a
    random offset per row), and the position of rank j among n unmasks at the step that holds the level
    ``1 - (j + 1/2)/n``; each step reveals the schedule's expected share of the positions (the same counts as
    the random order on average), and the positions one step reveals together are spread over the window
    instead of falling next to each other by chance. With L a power of two, n = L and T a power of two
    (log-linear schedule) they are exactly T apart; otherwise the closest pair of a step is about T/3 to T/2
    apart (200 rows: L = 1,000 and T = 32: >= 16; L = 251 and T = 16: >= 6), where the random order puts 40%
    of a step's positions within 4 bases of another one at T = 16. Randomness: one offset per row (int64)
    and one float64 token uniform per position, drawn up front; the trajectory does not depend on ``cache``
    either. Revealing positions together draws them independently given ``z_t``; its error is the dependence
    between them (their total correlation given ``z_t``), which for DNA decays within tens of bases. This is
    dilated unmasking (Luxembourg et al. 2025, "Plan for Speed: Dilated Scheduling for Masked Diffusion
    Language Models"). Its limit T -> infinity reveals one position at a time in that order, not in a uniformly random
    one: for an exact model every order gives the same law; for a trained one the law may differ
    (perf/README.md "Sampler steps at equal quality" measures it).

    Called as ``ancestral_sample(denoiser, vocab, batch_size, length, *, x_init=..., known_tokens=...,
    known_mask=..., generator=..., device=..., schedule=..., num_steps=..., cache=..., ...)`` (the shared
    front end: :func:`_window_sampler`). Time conditioning passes ``t = k/T`` (float32 [B]).
    """
    if cache and time_conditioning:
        raise ValueError("the cached sampler needs time conditioning off (denoiser output must depend on z only)")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    schedule = schedule if schedule is not None else make_schedule("loglinear")
    B, L = z.shape
    dev = z.device
    masked0 = z == vocab.mask_id
    if order == "random":
        u_unmask = torch.rand((B, L), generator=generator, dtype=torch.float64, device=dev)
    else:
        u_unmask = _dilated_unmask_levels(masked0, torch.randint(0, max(L, 1), (B,), generator=generator, device=dev))
    u_token = torch.rand((B, L), generator=generator, dtype=torch.float64, device=dev)
    step = _unmask_steps(u_unmask, _reveal_ratio(schedule, num_steps, dev))
    step = torch.where(masked0, step, torch.zeros_like(step))  # 0 = never (known / already unmasked)
    if cache:
        ks = torch.unique(step[masked0]).tolist()[::-1]  # event steps, from T down to 1
    else:
        last = int(step[masked0].min()) if bool(masked0.any()) else num_steps + 1
        ks = list(range(num_steps, last - 1, -1))  # every step while something is still masked
    calls = 0
    method = "cached" if cache else "ancestral"
    for k in ks:
        t = torch.full((B,), k / num_steps, dtype=torch.float32, device=dev)
        logits = denoiser(z, t if time_conditioning else None)
        calls += 1
        context = _check_logits(logits, method, num_steps - k + 1, num_steps, k / num_steps, calls)
        unmask = step == k
        if bool(unmask.any()):
            probs = token_probs(logits, vocab, temperature, top_p)
            z = torch.where(unmask, sample_categorical(probs, u_token, context=context), z)
    return SampleOutput(z, calls, num_steps)


# -------------------------------------------------------------------------------- first hitting
@_window_sampler
def first_hitting_sample(denoiser: Denoiser, vocab: DiffusionVocab, z: torch.Tensor, generator: torch.Generator, *,
                         schedule: NoiseSchedule | None = None, time_conditioning: bool = False,
                         temperature: float = 1.0, top_p: float = 1.0) -> SampleOutput:
    """First-hitting sampler: exact simulation of the continuous-time reverse process.

    Each iteration draws, per row with n > 0 masked tokens, the next hitting time s from
    ``1 - alpha_s = (1 - alpha_t) u^(1/n)``, a uniformly random masked position, and its token
    from ``x_theta(z)`` evaluated at time s (the time only matters with time conditioning). All
    rows advance together, so the number of denoiser calls is the largest number of masked
    positions in the batch (<= L). Called like :func:`ancestral_sample` (options: schedule,
    time_conditioning, temperature, top_p).
    """
    schedule = schedule if schedule is not None else make_schedule("loglinear")
    B, L = z.shape
    dev = z.device
    m_t = schedule.mask_prob(torch.ones(B, dtype=torch.float64, device=dev))
    calls = 0
    rows = torch.arange(B, device=dev)
    masked0 = z == vocab.mask_id
    while True:
        masked = z == vocab.mask_id
        n = masked.sum(-1)
        if not bool((n > 0).any()):
            break
        u_time = torch.rand(B, generator=generator, dtype=torch.float64, device=dev)
        u_pos = torch.rand(B, generator=generator, dtype=torch.float64, device=dev)
        u_tok = torch.rand(B, generator=generator, dtype=torch.float64, device=dev)
        active = n > 0
        nf = n.clamp(min=1).to(torch.float64)
        m_s = torch.where(active, m_t * torch.exp(torch.log(u_time) / nf), m_t)
        s = schedule.t_from_mask_prob(m_s)
        logits = denoiser(z, s.to(torch.float32) if time_conditioning else None)
        calls += 1
        context = _check_logits(logits, "first_hitting", calls, int(masked0.sum(-1).max()), float(s.max()), calls)
        k = torch.floor(u_pos * nf).long().clamp(max=L - 1)  # k-th masked position (0-based)
        csum = torch.cumsum(masked.long(), -1)
        pos = ((csum <= k[:, None]).sum(-1)).clamp(max=L - 1)
        probs = token_probs(logits[rows, pos], vocab, temperature, top_p)
        # rows with nothing left to reveal draw nothing: their (unused) probabilities are not checked
        probs = torch.where(active[:, None], probs, torch.ones((), dtype=probs.dtype, device=dev))
        tok = sample_categorical(probs, u_tok, context=context)
        new = z.clone()
        new[rows, pos] = tok
        z = torch.where(active[:, None], new, z)
        m_t = m_s
    return SampleOutput(z, calls, calls)


# --------------------------------------------------------------------------------- SEDD analytic
@_window_sampler
def sedd_analytic_sample(denoiser: Denoiser, vocab: DiffusionVocab, z: torch.Tensor, generator: torch.Generator, *,
                         schedule: NoiseSchedule | None = None, num_steps: int = 1000, time_conditioning: bool = False,
                         scale_by_num_allowed: bool = True) -> SampleOutput:
    """SEDD analytic sampler for the absorbing process (Lou et al. 2024, "Tweedie tau-leaping").

    With concrete scores ``s_y = q_y alpha_t/(1 - alpha_t)`` at a masked position, the exact reverse
    transition from t to s is ``P(z_s = y) ∝ expm1(sigma_t - sigma_s) s_y`` and
    ``P(z_s = [MASK]) ∝ (1 - alpha_s)/(1 - alpha_t)``, normalized (it equals MDLM's step when
    ``sum q = 1``). The token weights are computed as ``q_y (m_t - m_s) / m_t`` (``m = 1 - alpha``), the
    same product without its factors ``alpha_t`` and ``1/alpha_t``: exact also where ``alpha_t = 0``
    (the first step of a schedule with ``alpha(1) = 0``, where the product form is ``0 * inf``). The last
    step denoises fully (no [MASK] option). One call per step. Called like :func:`ancestral_sample`
    (options: schedule, num_steps, time_conditioning, scale_by_num_allowed).
    """
    schedule = schedule if schedule is not None else make_schedule("loglinear")
    B, L = z.shape
    dev = z.device
    calls = 0
    for k in range(num_steps, 0, -1):
        u = torch.rand((B, L), generator=generator, dtype=torch.float64, device=dev)
        masked = z == vocab.mask_id
        if not bool(masked.any()):
            continue
        t = torch.full((B,), k / num_steps, dtype=torch.float64, device=dev)
        s = torch.full((B,), (k - 1) / num_steps, dtype=torch.float64, device=dev)
        logits = denoiser(z, t.to(torch.float32) if time_conditioning else None)
        calls += 1
        context = _check_logits(logits, "sedd", num_steps - k + 1, num_steps, k / num_steps, calls)
        lq = sedd_log_q(logits, vocab, scale_by_num_allowed)
        m_t, m_s = schedule.mask_prob(t), schedule.mask_prob(s)
        # expm1(sigma_t - sigma_s) * q alpha_t / m_t = q (alpha_s - alpha_t) / m_t = q (m_t - m_s) / m_t
        w = torch.exp(lq.to(torch.float64)) * ((m_t - m_s) / m_t)[:, None, None]
        w_mask = (m_s / m_t)[:, None].expand(B, L) if k > 1 else torch.zeros((B, L), dtype=torch.float64, device=dev)
        w[..., vocab.mask_id] = w_mask
        # unmasked positions keep their token: their (unused) weights are not checked
        w = torch.where(masked[..., None], w, torch.ones((), dtype=w.dtype, device=dev))
        draw = sample_categorical(w, u, context=context)
        z = torch.where(masked, draw, z)
    return SampleOutput(z, calls, num_steps)


# ------------------------------------------------------------------------------------------ AR
@_window_sampler
def ar_sample(denoiser: Denoiser, vocab: DiffusionVocab, z: torch.Tensor, generator: torch.Generator, *,
              bos_id: int | None = None, temperature: float = 1.0, top_p: float = 1.0) -> SampleOutput:
    """Left-to-right sampling for :class:`ARObjective` models (inputs ``[bos, x^0..x^{L-2}]``).

    Known positions are kept (teacher-forced); this is exact conditioning only for a known
    *prefix*. One denoiser call per position that is unknown in some row (no KV cache). Called like
    :func:`ancestral_sample` (options: bos_id, temperature, top_p).
    """
    bos = vocab.mask_id if bos_id is None else bos_id
    B, L = z.shape
    calls = 0
    for l in range(L):
        u = torch.rand(B, generator=generator, dtype=torch.float64, device=z.device)
        todo = z[:, l] == vocab.mask_id
        if not bool(todo.any()):
            continue
        inputs = torch.cat([torch.full_like(z[:, :1], bos), z[:, :-1]], 1)
        logits = denoiser(inputs, None)
        calls += 1
        context = _check_logits(logits, "ar", l + 1, L, None, calls)
        probs = token_probs(logits[:, l], vocab, temperature, top_p)
        probs = torch.where(todo[:, None], probs, torch.ones((), dtype=probs.dtype, device=probs.device))
        tok = sample_categorical(probs, u, context=context)
        z[:, l] = torch.where(todo, tok, z[:, l])
    return SampleOutput(z, calls, L)


# ---------------------------------------------------------------------------------------- config
@dataclass
class SamplerConfig:
    """Sampler options: what ``sampler`` may hold in ``genodiff sample text`` (a method name or a dict of
    these fields; ``steps`` / ``temperature`` / ``top_p`` fill ``num_steps`` / ``temperature`` / ``top_p``).

    method: ``"cached"`` (default), ``"ancestral"``, ``"first_hitting"``, ``"sedd"`` or ``"ar"``.
    num_steps: T for ancestral / cached / sedd. schedule: schedule spec (should match training).
    time_conditioning: pass t to the denoiser (not allowed with ``cached``).
    order: ``"random"`` (default) or ``"dilated"``, the reveal order of ancestral / cached
    (:func:`ancestral_sample`).
    temperature, top_p: see :func:`token_probs` (not used by ``sedd``).
    bos_id: AR start token (default ``[MASK]``). seed: default seed when no generator is passed.
    Sequences longer than the model's context are generated window by window by
    :func:`genodiff.generate.conditioning.fill`, which takes :meth:`Sampler.sample` as its window sampler.
    """

    method: str = "cached"
    num_steps: int = 1000
    schedule: Any = field(default_factory=lambda: ScheduleConfig())
    time_conditioning: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    bos_id: int | None = None
    sedd_scale_by_num_allowed: bool = True
    seed: int | None = None
    order: str = "random"


_METHODS = ("ancestral", "cached", "first_hitting", "sedd", "ar")


class Sampler:
    """Config-driven front end: ``Sampler(cfg, vocab).sample(denoiser, batch_size, length, ...)``."""

    def __init__(self, config: SamplerConfig | Mapping | None = None, vocab: DiffusionVocab | None = None, **kwargs):
        self.config = config_from(SamplerConfig, config, kwargs)
        if self.config.method not in _METHODS:
            raise ValueError(f"unknown sampler {self.config.method!r}; choose from {_METHODS}")
        if self.config.order not in ORDERS:
            raise ValueError(f"unknown order {self.config.order!r}; choose from {ORDERS}")
        self.vocab = vocab if vocab is not None else DiffusionVocab.dna()
        self.schedule = make_schedule(self.config.schedule)

    def _generator(self, generator, device=None):
        if generator is not None:
            return generator
        g = torch.Generator(device=device or "cpu")
        if self.config.seed is not None:
            g.manual_seed(self.config.seed)
        else:
            g.seed()
        return g

    def _window_fn(self, denoiser):
        c, v = self.config, self.vocab
        common = dict(time_conditioning=c.time_conditioning)
        if c.method in ("ancestral", "cached"):
            return lambda **kw: ancestral_sample(denoiser, v, schedule=self.schedule, num_steps=c.num_steps,
                                                 cache=c.method == "cached", temperature=c.temperature,
                                                 top_p=c.top_p, order=c.order, **common, **kw)
        if c.method == "first_hitting":
            return lambda **kw: first_hitting_sample(denoiser, v, schedule=self.schedule, temperature=c.temperature,
                                                     top_p=c.top_p, **common, **kw)
        if c.method == "sedd":
            return lambda **kw: sedd_analytic_sample(denoiser, v, schedule=self.schedule, num_steps=c.num_steps,
                                                     scale_by_num_allowed=c.sedd_scale_by_num_allowed, **common, **kw)
        return lambda **kw: ar_sample(denoiser, v, bos_id=c.bos_id, temperature=c.temperature, top_p=c.top_p, **kw)

    def expected_calls(self, num_masked: int, batch_size: int = 1, length: int | None = None) -> float:
        """Expected denoiser calls of one :meth:`sample` of a window in which each of ``batch_size`` rows has
        ``num_masked`` masked positions (``length``: the window, for ``ar``; default ``num_masked``).

        Exact for first_hitting and ar; for ancestral ``T - E[first unmask step] + 1`` and for cached the
        expected number of distinct unmask steps, from the schedule (each masked position's unmask step k has
        probability ``r_k - r_{k-1}``, ``r`` as in :func:`ancestral_sample`, independently; with
        ``order="dilated"`` the steps are fixed by ``num_masked``, and the count is exact); sedd: at most T.
        For progress bars and time estimates, never for control flow."""
        c = self.config
        if num_masked <= 0:
            return 0.0
        if c.method == "first_hitting":
            return float(num_masked)
        if c.method == "ar":
            return float(length or num_masked)
        if c.method == "sedd":
            return float(c.num_steps)
        ratio = _reveal_ratio(self.schedule, c.num_steps)
        if c.order == "dilated":
            steps = _unmask_steps(_planned_levels(torch.arange(num_masked), num_masked), ratio)
            return float(steps.unique().numel() if c.method == "cached" else c.num_steps - int(steps.min()) + 1)
        ratio[0] = 0.0  # steps are clamped to >= 1
        draws = num_masked * batch_size
        if c.method == "cached":
            p_step = ratio[1:] - ratio[:-1]
            return float((1.0 - (1.0 - p_step) ** draws).sum())
        first_step_mean = float(((1.0 - ratio[:-1]) ** draws).sum())  # E[min k] = sum_k P(min >= k)
        return float(c.num_steps) - first_step_mean + 1.0

    def sample(self, denoiser: Denoiser, batch_size: int = 1, length: int | None = None, *,
               known_tokens: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
               x_init: torch.Tensor | None = None, generator: torch.Generator | None = None, device=None) -> SampleOutput:
        """Sample [batch_size, length] (or fill the masks of ``x_init``), keeping known positions."""
        if x_init is None:
            if length is None:
                raise ValueError("give length or x_init")
            x_init = initial_state(batch_size, length, self.vocab, known_tokens, known_mask, device)
        return self._window_fn(denoiser)(x_init=x_init, generator=self._generator(generator, x_init.device))


def make_sampler(spec: "str | Mapping[str, Any] | None" = None, vocab: DiffusionVocab | None = None, **kwargs) -> Sampler:
    """``make_sampler({"method": "first_hitting", "temperature": 0.9})`` or ``make_sampler("cached", num_steps=128)``."""
    if isinstance(spec, str):
        spec = {"method": spec}
    return Sampler(spec, vocab, **kwargs)
