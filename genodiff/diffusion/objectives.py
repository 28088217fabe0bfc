"""Training objectives on one interface.

Every objective maps a batch of clean token ids to a per-sequence negative ELBO (or exact NLL for
AR) in nats::

    out = objective.loss(x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None)

Arguments:
    x0: LongTensor[B, L] clean tokens.
    attention_mask: Bool/LongTensor[B, L] or None; 0/False = padding. Padding and positions whose
        clean token is not in ``vocab.allowed_output_ids`` are never noised and never scored
        (:meth:`DiffusionVocab.scorable`).
    t: FloatTensor[B] or None. None = sample (stratified over the micro-batch, or pass times from
        :func:`genodiff.diffusion.process.stratified_times` to stratify over a global batch).
    denoiser: callable ``(x_t: LongTensor[B, L], t: FloatTensor[B] | None) -> logits[B, L, V]``
        (raw logits; defaults to the one given at construction). With time conditioning off the
        denoiser receives ``None``.
    x_t: optional LongTensor[B, L] noised input to use instead of sampling ``q(z_t | x0)`` (used by
        the exhaustive tests and by custom estimators); must agree with ``x0`` where unmasked.

Returns :class:`ObjectiveOutput` with

* ``nelbo_per_seq`` FloatTensor[B] -- single-sample unbiased estimate of each sequence's NELBO
  (nats); for AR the exact NLL;
* ``num_tokens`` LongTensor[B] -- scored positions per sequence;
* ``loss`` scalar -- ``nelbo_per_seq.sum() / num_tokens.sum()`` (nats per token; backprop this);
* ``token_nll_sum`` FloatTensor[B] -- *unweighted* sum over masked scored positions of
  ``-log p_theta(x0_l | z_t)`` (nats), ``num_masked`` LongTensor[B] -- their count (per-token
  reconstruction metrics: ``token_nll_sum / num_masked``);
* ``per_token`` FloatTensor[B, L] -- each position's contribution to ``nelbo_per_seq``;
* ``t`` FloatTensor[B] or None -- the times used.

Training-loop sketch (global-batch stratified times across devices and accumulation steps)::

    t = objective.sample_t(b, generator=g, device=x0.device,
                           global_batch_size=b * world_size * accum_steps,
                           offset=(accum_step * world_size + rank) * b)
    out = objective.loss(x0, attention_mask, t)   # objective built with denoiser=wrapped backbone
    out.loss.backward()                           # nats/token of this micro-batch
    # log: out.nelbo_per_seq.sum() and out.num_tokens.sum() (all-reduce both for exact nats/token)

Objectives: :class:`MDLMObjective` (SUBS, continuous or discrete time), :class:`ARObjective`,
:class:`SEDDObjective` (absorbing score entropy), :class:`D3PMObjective` (discrete-time absorbing
D3PM with optional carry-over / zero-masking, the MDLM ablation rows). Build from a dict with
:func:`make_objective`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import torch

from genodiff.diffusion.process import (
    apply_sampling_eps,
    carry_over,
    discrete_times,
    mask_tokens,
    restricted_log_probs,
    sedd_log_q,
    stratified_times,
    uniform_times,
)
from genodiff.diffusion.schedules import ScheduleConfig, make_schedule
from genodiff.diffusion.specs import config_from, split_spec
from genodiff.diffusion.vocab import DiffusionVocab

__all__ = [
    "Denoiser",
    "ObjectiveOutput",
    "MDLMConfig",
    "MDLMObjective",
    "ARConfig",
    "ARObjective",
    "SEDDConfig",
    "SEDDObjective",
    "D3PMConfig",
    "D3PMObjective",
    "make_objective",
    "token_log_probs",
    "masked_nll",
]

Denoiser = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass
class ObjectiveOutput:
    """Result of ``objective.loss``; see the module docstring for shapes and units."""

    nelbo_per_seq: torch.Tensor
    num_tokens: torch.Tensor
    token_nll_sum: torch.Tensor
    num_masked: torch.Tensor
    per_token: torch.Tensor
    t: torch.Tensor | None = None

    @property
    def loss(self) -> torch.Tensor:
        """Scalar: total NELBO / total scored tokens (nats per token)."""
        return self.nelbo_per_seq.sum() / self.num_tokens.sum().clamp(min=1)

    @property
    def bits_per_token(self) -> torch.Tensor:
        return self.loss / math.log(2.0)


def token_log_probs(logp: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """``logp[b, l, x0[b, l]]``: FloatTensor[B, L] from log-probabilities [B, L, V] and tokens [B, L]."""
    return logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)


def masked_nll(logp: torch.Tensor, x0: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """FloatTensor[B, L]: ``-log p(x0)`` where ``where`` is True, 0 elsewhere."""
    nll = -token_log_probs(logp, x0)
    return torch.where(where, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))


class _Base:
    """Objective from a config (a ``config_class`` instance, a mapping or None, plus keyword overrides), a
    vocabulary (default: DNA) and an optional default denoiser."""

    config_class: type
    config: Any

    def __init__(self, config: Any = None, vocab: DiffusionVocab | None = None, denoiser: Denoiser | None = None,
                 **kwargs):
        self.vocab = vocab if vocab is not None else DiffusionVocab.dna()
        self.denoiser = denoiser
        self.config = config_from(self.config_class, config, kwargs)
        self._setup()

    def _setup(self) -> None:
        """Finish construction from ``self.config`` (subclasses check values and build their parts here)."""

    def _denoiser(self, denoiser):
        d = denoiser if denoiser is not None else self.denoiser
        if d is None:
            raise ValueError("no denoiser: pass denoiser= to loss() or to the constructor")
        return d

    def __call__(self, *args, **kwargs) -> ObjectiveOutput:
        return self.loss(*args, **kwargs)


class _NoisingBase(_Base):
    """An objective over the masking forward process: a noise ``schedule`` (``config.schedule``), training
    times from stratified uniforms (``config.antithetic``) and optional time conditioning
    (``config.time_conditioning``)."""

    def _setup(self) -> None:
        self.schedule = make_schedule(self.config.schedule)

    def sample_t(self, batch_size: int, *, generator=None, device=None, dtype=torch.float32,
                 global_batch_size: int | None = None, offset: int = 0) -> torch.Tensor:
        """FloatTensor[B] of training times: U[0,1) draws stratified over the global batch when its size is
        given (``offset``: this micro-batch's first index in it), else over the micro-batch with
        ``antithetic`` (i.i.d. without), mapped to times by :meth:`times_from_u`."""
        if global_batch_size is not None or self.config.antithetic:
            u = stratified_times(batch_size, global_batch_size, offset, generator=generator, device=device, dtype=dtype)
        else:
            u = uniform_times(batch_size, generator=generator, device=device, dtype=dtype)
        return self.times_from_u(u)

    def times_from_u(self, u: torch.Tensor) -> torch.Tensor:
        """Training times from U[0,1) draws (see :meth:`sample_t`)."""
        raise NotImplementedError

    def noised(self, x0: torch.Tensor, attention_mask: torch.Tensor | None, t: torch.Tensor | None,
               x_t: torch.Tensor | None, generator: torch.Generator | None):
        """``(scored, t, x_t, masked)`` of one loss evaluation: the scorable positions, the times (drawn when
        ``t`` is None), the noised input (drawn from ``q(z_t | x0)`` when ``x_t`` is None) and its masked
        scorable positions."""
        scored = self.vocab.scorable(x0, attention_mask)
        if t is None:
            t = self.sample_t(x0.shape[0], generator=generator, device=x0.device)
        if x_t is None:
            x_t, masked = mask_tokens(x0, t, self.schedule, self.vocab, scored, generator=generator)
        else:
            masked = (x_t == self.vocab.mask_id) & scored
        return scored, t, x_t, masked

    def denoise(self, denoiser: Denoiser, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The denoiser's logits at ``(x_t, t)``; it sees ``t`` only with time conditioning on."""
        return denoiser(x_t, t if self.config.time_conditioning else None)

    # likelihood bound -----------------------------------------------------------------------
    #: continuous time: the NELBO needs a reconstruction term at t = 0 when alpha(0) < 1 (discrete-time
    #: objectives reveal everything in their last step instead)
    continuous_time = True

    def bound_objective(self):
        """This objective as a likelihood bound for the model the samplers sample.

        The samplers start from all-[MASK] at t = 1, whatever ``alpha(1)`` is, so they simulate the reverse
        process of the forward process conditioned on all-[MASK] at t = 1
        (:class:`~genodiff.diffusion.schedules.ConditionedSchedule`); its NELBO has no prior term (the KL to
        the all-[MASK] prior is 0, where the unconditioned process's is infinite for ``alpha(1) > 0``). The view
        shares the denoiser and config (``sampling_eps = 0``: the whole of [0, 1]); with ``alpha(0) < 1`` a
        continuous-time bound adds :meth:`reconstruction`. For a schedule with ``alpha(1) = 0`` and
        ``alpha(0) = 1`` it computes exactly what this objective computes.
        """
        view = copy.copy(self)
        view.schedule = self.schedule.conditioned()
        if hasattr(self.config, "sampling_eps"):
            view.config = dataclasses.replace(self.config, sampling_eps=0.0)
        return view

    def reconstruction(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                       denoiser: Denoiser | None = None, x_t: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of the reconstruction term ``-log p_theta(x | z_0)`` (nats, FloatTensor[B], float64).

        ``z_0 ~ q(z_0 | x)`` (or ``x_t``) masks each scorable position with probability ``1 - alpha(0)``; the
        model reveals the masked ones at once from the denoiser at t = 0 (what the T-step samplers do in their
        last step), ``sum_masked -log p_theta(x^l | z_0)``. Zero, without a denoiser call or a random draw,
        for discrete-time objectives and when ``alpha(0) = 1``.
        """
        B = x0.shape[0]
        zero = torch.zeros(B, dtype=torch.float64, device=x0.device)
        if not self.continuous_time or self.schedule.ends()[0] == 0.0:
            return zero
        t0 = torch.zeros(B, dtype=torch.float64, device=x0.device)
        _, _, x_t, masked = self.noised(x0, attention_mask, t0, x_t, generator)
        if not bool(masked.any()):
            return zero
        return self.loss(x0, attention_mask, t0, denoiser=denoiser, x_t=x_t).token_nll_sum.double()


# ----------------------------------------------------------------------------------------- MDLM
@dataclass
class MDLMConfig:
    """MDLM objective options.

    Attributes:
        schedule: noise schedule spec (name, dict or :class:`ScheduleConfig`); default log-linear
            ``alpha_t = 1 - (1 - 1e-3) t``.
        time: ``"continuous"`` (Rao-Blackwellized continuous-time NELBO, MDLM eq. 10/11) or
            ``"discrete"`` (T-step NELBO).
        num_timesteps: T for ``time="discrete"``.
        time_conditioning: pass ``t`` to the denoiser (False: pass ``None``; the DNA default and
            required by the cached sampler).
        antithetic: stratify sampled times over the batch (see ``stratified_times``).
        sampling_eps: sample ``t ~ U[sampling_eps, 1)`` (continuous time) to avoid the ``1/t``
            weight blowing up; the estimate then drops the ``[0, eps)`` part of the integral and
            rescales the rest by ``1/(1-eps)`` (the two nearly cancel). Use 0 for exact evaluation.
    """

    schedule: Any = field(default_factory=lambda: ScheduleConfig())
    time: str = "continuous"
    num_timesteps: int = 1000
    time_conditioning: bool = False
    antithetic: bool = True
    sampling_eps: float = 1e-3


class MDLMObjective(_NoisingBase):
    """MDLM with the SUBS parameterization.

    Continuous time (MDLM eq. 10 per token, eq. 11 per sequence)::

        NELBO(x) = E_{t ~ U[0,1]} E_{z_t ~ q(.|x)} [ w(t) * sum_{l: z_t^l = [MASK]} -log x_theta(z_t)_l[x^l] ]
        w(t)     = -alpha'_t / (1 - alpha_t)  (= 1/t for the log-linear schedule)

    ``loss`` returns the integrand at one (t, z_t) per sequence: an unbiased single-sample estimate.

    Discrete time with T steps (t(i) = i/T, s(i) = (i-1)/T)::

        NELBO_T(x) = sum_{i=1..T} E_{z_t} [ (alpha_s - alpha_t)/(1 - alpha_t) * sum_masked -log x_theta(z_t)_l[x^l] ]

    estimated by drawing i uniformly (stratified) and multiplying by T. The last step (i = 1, s = 0) reveals
    every masked token, as the samplers do: its weight is ``T`` even when ``alpha_0 < 1`` (the reconstruction
    term folded into it).

    Ends of the schedule: ``loss`` is the training integrand of the schedule as given. As a likelihood bound
    (``alpha_1 > 0`` or ``alpha_0 < 1``) use :meth:`bound_objective` (no prior term: the process conditioned on
    all-[MASK] at t = 1, which the samplers sample) plus :meth:`reconstruction` in continuous time;
    :func:`genodiff.diffusion.likelihood.estimate_nelbo` does both.
    """

    config_class = MDLMConfig

    def _setup(self) -> None:
        if self.config.time not in ("continuous", "discrete"):
            raise ValueError(f"time must be 'continuous' or 'discrete', got {self.config.time!r}")
        super()._setup()
        self.continuous_time = self.config.time == "continuous"

    # time ---------------------------------------------------------------------------------
    def times_from_u(self, u: torch.Tensor) -> torch.Tensor:
        """Continuous: ``t = eps + (1 - eps) u``. Discrete: ``t = i / T`` with ``i = floor(u T) + 1``."""
        if self.config.time == "discrete":
            return discrete_times(u, self.config.num_timesteps)
        return apply_sampling_eps(u, self.config.sampling_eps)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-masked-token weight at time t (FloatTensor[B]).

        Continuous: ``-alpha'_t/(1-alpha_t)``. Discrete: ``T (alpha_s - alpha_t)/(1 - alpha_t)``.
        """
        if self.config.time == "continuous":
            return self.schedule.loss_weight(t)
        T = self.config.num_timesteps
        s = (t - 1.0 / T).clamp(min=0.0)
        m_t = self.schedule.mask_prob(t)
        m_s = torch.where(s > 0, self.schedule.mask_prob(s), torch.zeros((), dtype=m_t.dtype, device=m_t.device))
        return T * (m_t - m_s) / m_t  # the last step (s = 0) reveals everything, also when alpha_0 < 1

    # loss ---------------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None, t: torch.Tensor | None = None,
             *, denoiser: Denoiser | None = None, x_t: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        scored, t, x_t, masked = self.noised(x0, attention_mask, t, x_t, generator)
        logp = restricted_log_probs(self.denoise(den, x_t, t), self.vocab)  # zero-masking; carry-over = zero loss
        nll = masked_nll(logp, x0, masked)
        zero = torch.zeros((), dtype=nll.dtype, device=nll.device)
        # w is +inf only where 1 - alpha_t = 0, i.e. nothing is masked; keep it out of the graph
        w = torch.nan_to_num(self.weight(t.to(nll.dtype)), posinf=0.0)
        per_token = torch.where(masked, w[:, None] * nll, zero)
        return ObjectiveOutput(
            nelbo_per_seq=per_token.sum(-1),
            num_tokens=scored.sum(-1),
            token_nll_sum=nll.sum(-1),
            num_masked=masked.sum(-1),
            per_token=per_token,
            t=t,
        )


# ------------------------------------------------------------------------------------------- AR
@dataclass
class ARConfig:
    """AR next-token objective. ``bos_id``: token fed before the first position (default: the
    vocabulary's mask id, i.e. "nothing known yet"), so every scored position is predicted."""

    bos_id: int | None = None


class ARObjective(_Base):
    """Left-to-right exact NLL: ``sum_l -log p_theta(x^l | x^{<l})`` over scored positions.

    The denoiser is called once on ``[bos, x^0, ..., x^{L-2}]`` with ``t=None`` and its logits at
    position ``l`` predict ``x^l`` (a causal backbone must not look ahead; the core does not check).
    """

    config_class = ARConfig

    @property
    def bos_id(self) -> int:
        return self.vocab.mask_id if self.config.bos_id is None else self.config.bos_id

    def shift_inputs(self, x0: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(x0[:, :1], self.bos_id)
        return torch.cat([bos, x0[:, :-1]], dim=1)

    def loss(self, x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        scored = self.vocab.scorable(x0, attention_mask)
        logits = den(self.shift_inputs(x0), None)
        nll = masked_nll(restricted_log_probs(logits, self.vocab), x0, scored)
        return ObjectiveOutput(nll.sum(-1), scored.sum(-1), nll.sum(-1), scored.sum(-1), nll, None)


# ----------------------------------------------------------------------------------------- SEDD
@dataclass
class SEDDConfig:
    """SEDD absorbing (score entropy, Lou et al. 2024) options; see :class:`SEDDObjective`."""

    schedule: Any = field(default_factory=lambda: ScheduleConfig())
    time_conditioning: bool = False
    antithetic: bool = True
    sampling_eps: float = 1e-3
    scale_by_num_allowed: bool = True


class SEDDObjective(_NoisingBase):
    """Absorbing-state diffusion-weighted denoising score entropy (continuous time).

    The denoiser's restricted logits ``l`` define *unnormalized* clean-token weights
    ``q_y = exp(l_y)`` (minus ``log(#allowed)`` when ``scale_by_num_allowed``, so zero logits give
    total mass 1), and the concrete score at a masked position is
    ``s_y = q_y * alpha_t / (1 - alpha_t)`` = p_t(z with l->y) / p_t(z) when q is exact.
    Score entropy per masked position, after substituting the absorbing rates, is::

        sigma'(t) [ sum_y s_y - r log s_{x0} + r (log r - 1) ],  r = alpha_t / (1 - alpha_t)
          = w(t) [ sum_y q_y - 1 - log q_{x0} ]                  (w(t) as in MDLM eq. 10)

    which is >= the MDLM integrand ``-w(t) log(q_{x0} / sum q)`` with equality iff ``sum q = 1``.
    Unmasked positions contribute exactly 0 (no reverse rate leaves an unmasked token).
    """

    config_class = SEDDConfig

    def times_from_u(self, u: torch.Tensor) -> torch.Tensor:
        """``t = eps + (1 - eps) u``."""
        return apply_sampling_eps(u, self.config.sampling_eps)

    def log_q(self, logits: torch.Tensor) -> torch.Tensor:
        """Unnormalized log clean-token weights (float32+, -inf outside allowed ids)."""
        return sedd_log_q(logits, self.vocab, self.config.scale_by_num_allowed)

    def loss(self, x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        scored, t, x_t, masked = self.noised(x0, attention_mask, t, x_t, generator)
        lq = self.log_q(self.denoise(den, x_t, t))
        lq_x0 = token_log_probs(lq, x0)
        total = torch.exp(lq).sum(-1)
        zero = torch.zeros((), dtype=lq.dtype, device=lq.device)
        se = torch.where(masked, total - 1.0 - lq_x0, zero)
        nll = torch.where(masked, torch.logsumexp(lq, -1) - lq_x0, zero)
        w = torch.nan_to_num(self.schedule.loss_weight(t.to(lq.dtype)), posinf=0.0)
        per_token = torch.where(masked, w[:, None] * se, zero)
        return ObjectiveOutput(per_token.sum(-1), scored.sum(-1), nll.sum(-1), masked.sum(-1), per_token, t)


# ----------------------------------------------------------------------------------------- D3PM
@dataclass
class D3PMConfig:
    """Discrete-time absorbing D3PM (Austin et al. 2021) with the MDLM ablation switches.

    ``carry_over=False, zero_masking=False`` is plain D3PM-absorb; turning both on gives exactly
    MDLM's discrete-time SUBS NELBO.
    """

    schedule: Any = field(default_factory=lambda: ScheduleConfig())
    num_timesteps: int = 1000
    carry_over: bool = False
    zero_masking: bool = False
    time_conditioning: bool = False
    antithetic: bool = True


class D3PMObjective(_NoisingBase):
    """T-step NELBO ``sum_i L_i`` estimated as ``T * L_i`` for a (stratified) random step i.

    With the model's clean-token distribution ``p~`` (over allowed ids, plus ``[MASK]`` unless
    ``zero_masking``; one-hot at unmasked inputs when ``carry_over``), step i (t = i/T, s = (i-1)/T):

    * i = 1 (reconstruction): ``sum_l -log p~(x^l | z_t)`` over scored positions (without
      carry-over the unmasked positions pay for predicting their own token);
    * i >= 2: for masked positions ``KL(q(z_s | z_t, x) || p_theta(z_s | z_t))`` with
      ``p_theta(z_s=y) = (alpha_s - alpha_t) p~(y) / Z``, ``p_theta(z_s=[M]) = ((1-alpha_s)(1-p~_M) + p~_M) / Z``,
      ``Z = (1-alpha_t)(1-p~_M) + p~_M`` and ``q(z_s = x) = (alpha_s - alpha_t)/(1 - alpha_t)``.
      Unmasked positions contribute 0 (an absorbed token cannot be unmasked forward in time).
    """

    config_class = D3PMConfig
    continuous_time = False  # step 1 reconstructs every position

    def times_from_u(self, u: torch.Tensor) -> torch.Tensor:
        """Step times ``i / T`` with ``i = floor(u T) + 1``."""
        return discrete_times(u, self.config.num_timesteps)

    def model_log_probs(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """log p~(x0 | z_t), FloatTensor[B, L, V] (float32+)."""
        extra = () if self.config.zero_masking else (self.vocab.mask_id,)
        logp = restricted_log_probs(logits, self.vocab, extra)
        if self.config.carry_over:
            logp = carry_over(logp, x_t, self.vocab)
        return logp

    def loss(self, x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        T = self.config.num_timesteps
        scored, t, x_t, masked = self.noised(x0, attention_mask, t, x_t, generator)
        logp = self.model_log_probs(self.denoise(den, x_t, t), x_t)
        dt = logp.dtype
        t = t.to(dt)
        lp_x = token_log_probs(logp, x0)
        lp_m = logp[..., self.vocab.mask_id]
        p_m = lp_m.exp()
        zero = torch.zeros((), dtype=dt, device=logp.device)
        nll = torch.where(masked, -lp_x, zero)
        # reconstruction step (i = 1)
        first = torch.isclose(t, torch.full_like(t, 1.0 / T))
        s = (t - 1.0 / T).clamp(min=0.0)
        m_t, m_s = self.schedule.mask_prob(t)[:, None], self.schedule.mask_prob(s)[:, None]
        recon = torch.where(scored, -lp_x, zero)  # carry-over makes -lp_x exactly 0 at unmasked inputs
        # KL for masked positions (i >= 2)
        q_x = (m_t - m_s) / m_t
        q_m = m_s / m_t
        log_z = torch.log(m_t * (1.0 - p_m) + p_m)
        log_p_x = torch.log(m_t - m_s) + lp_x - log_z
        log_p_m = torch.log(m_s * (1.0 - p_m) + p_m) - log_z
        kl = q_x * (torch.log(q_x) - log_p_x) + torch.where(q_m > 0, q_m * (torch.log(q_m) - log_p_m), zero)
        kl = torch.where(masked, kl, zero)
        per_token = T * torch.where(first[:, None], recon, kl)
        return ObjectiveOutput(per_token.sum(-1), scored.sum(-1), nll.sum(-1), masked.sum(-1), per_token, t)


# -------------------------------------------------------------------------------------- factory
_OBJECTIVES = {"mdlm": MDLMObjective, "ar": ARObjective, "sedd": SEDDObjective, "d3pm": D3PMObjective}


def make_objective(spec: "str | Mapping[str, Any] | None" = None, vocab: DiffusionVocab | None = None,
                   denoiser: Denoiser | None = None, **kwargs):
    """Build an objective from ``{"name": "mdlm"|"ar"|"sedd"|"d3pm", **config_fields}`` or kwargs.

    Example: ``make_objective({"name": "mdlm", "schedule": {"name": "cosine"}, "time": "discrete"})``.
    """
    name, args = split_spec(spec, kwargs, default="mdlm", known=_OBJECTIVES, what="objective")
    return _OBJECTIVES[name](args, vocab=vocab, denoiser=denoiser)
