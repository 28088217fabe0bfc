"""Plaid (Gulrajani & Hashimoto 2023): Gaussian diffusion on learned token embeddings, trained and evaluated
with the variational bound of VDM (Kingma et al. 2021). The fourth likelihood objective on the shared core,
next to MDLM, SEDD and AR (``objective=plaid``).

Forward process (variance preserving). Every scored position ``l`` of a sequence ``x`` carries the embedding
``e_l = E[x_l]`` of its token, a row of the learned table ``E`` (A x D, A allowed ids, rows normalised to unit
norm as in Plaid); padding, ``N`` and other unscored positions carry nothing (their input is 0, never scored)::

    q(z_t | x) = N(alpha_t e, sigma_t^2 I),   alpha_t^2 = sigmoid(-gamma(t)),   sigma_t^2 = sigmoid(gamma(t)),
    SNR(t) = alpha_t^2 / sigma_t^2 = exp(-gamma(t)),   gamma(t) = gamma_0 + (gamma_1 - gamma_0) s(t)

with learned endpoints ``gamma_0 < gamma_1`` and a fixed increasing shape ``s`` (``s(0) = 0``, ``s(1) = 1``;
``linear``: ``s = t``, ``cosine``: ``s = (1 - cos(pi t)) / 2``).

The bound (nats per sequence; VDM Sec. 3-4, Plaid Sec. 3), ``-log p_theta(x) <= prior + reconstruction +
diffusion``:

* prior: ``KL(q(z_1 | x) || N(0, I)) = 1/2 sum_l [alpha_1^2 ||e_l||^2 + D (sigma_1^2 - 1 - log sigma_1^2)]``
  (closed form, no draw);
* reconstruction: ``E_{q(z_0 | x)}[-log p_theta(x | z_0)]`` with the decoder ``p_theta(x | z_0) = prod_l
  p_theta(x_l | z_0, t = 0)``, the denoiser's own token distribution at t = 0 (Plaid's choice; VDM's is the
  Gaussian likelihood alone, which is the special case of a zero network, see "output bias");
* diffusion, continuous time (VDM's ``L_inf``)::

      L_inf = -1/2 E_{t ~ U[0,1], eps} [SNR'(t) ||e - x_hat(z_t, t)||^2]
            =  1/2 E_{t, eps} [gamma'(t) exp(-gamma(t)) ||e - x_hat(z_t, t)||^2]

  or with ``time="discrete"`` and T steps (VDM's ``L_T``, the bound of the T-step ancestral sampler)::

      L_T = T/2 E_{i ~ U{1..T}, eps} [(SNR(s) - SNR(t)) ||e - x_hat(z_t, t)||^2],   t = i/T, s = (i-1)/T.

  Substituting ``v = SNR(t)`` gives ``L_inf = 1/2 E int_{SNR(1)}^{SNR(0)} ||e - x_hat(z_v)||^2 dv``: the
  continuous-time bound depends on the schedule only through its endpoints (the shape changes the variance of
  the one-draw estimate, not its mean; tests/diffusion/test_plaid.py checks this with two shapes).

The denoiser (categorical reparameterisation, Plaid Sec. 3): ``x_hat(z, t) = sum_v p_theta(v | z, t) E[v]``
with ``p_theta = softmax`` over the allowed ids of the network's logits plus, with ``output_bias``, the
``z``-dependent bias ``b_v = (alpha_t <z_l, E[v]> - alpha_t^2 ||E[v]||^2 / 2) / sigma_t^2 = log N(z_l;
alpha_t E[v], sigma_t^2 I) + const`` (Plaid's output bias, without its warm-up): with a zero network ``p_theta``
is then exactly the posterior of a position whose token is uniform a priori, so the network only learns the
context's correction. The same ``p_theta`` at t = 0 is the decoder of the reconstruction term.

The network is any genodiff denoiser ``(inputs FloatTensor[B, L, C], t FloatTensor[B] | None) -> logits
[B, L, V]``: a backbone with continuous inputs (``model.input_dim = C``, :attr:`PlaidObjective.input_dim`
``= 2 D + 4 F``; Caduceus and DiT take float inputs through an input projection). Its inputs are, per
position, Plaid's rescaled ``z / sqrt(alpha^2 / D + sigma^2)``, the self-conditioning estimate
``sqrt(D) x_sc`` and ``F`` Fourier frequencies of ``gamma(t)`` (sin and cos, Plaid's time embedding, which
reaches backbones without a time input such as Caduceus), laid out as the palindrome
``[z[:D/2], x_sc[:D/2], f, flip(f), x_sc[D/2:], z[D/2:]]`` (:meth:`PlaidObjective.model_inputs`).

Reverse complement (DNA, Caduceus-PS). With ``rc_symmetric`` the table satisfies ``E[comp(a)] = flip(E[a])``
(it is symmetrised: ``E = (W + flip(W[comp]))/2``, then normalised). The reverse complement of a sequence then
maps ``z_l -> flip(z_{L-1-l})`` (the noise is invariant in law under the flip), and because of the palindromic
layout the network inputs map to their flip over length and channels, which is what Caduceus-PS's continuous
input path treats as the reverse complement: the whole denoiser, and hence the bound and the sampler, is exactly
RC-equivariant. ``rc_symmetric=None`` turns it on for the DNA vocabulary.

Self-conditioning (Chen et al. 2022, as in Plaid): the network also sees ``x_sc``, a first estimate of
``x_hat`` at the same ``(z_t, t)`` from a pass with ``x_sc = 0`` (no gradient). With it on, the model whose
bound is reported and which the sampler draws from is ``x_hat(z, t) = f(z, t, sg(f(z, t, 0)))``, a deterministic
function of ``(z_t, t)``, so the bound is valid for it: :meth:`PlaidObjective.bound_objective` (what
``estimate_nelbo``, ``genodiff evaluate`` and validation use) and :func:`plaid_sample` self-condition every
denoiser evaluation (two network calls each). Training self-conditions a micro-batch with probability
``self_conditioning_prob`` (Plaid: 25% of the rows), so one network serves both passes. (Plaid's own sampler
feeds the previous step's estimate instead, one call per step but a different model from the one bounded.)

Training estimator. :meth:`PlaidObjective.loss` returns one unbiased draw of each sequence's NELBO: the prior
exactly, and with ``reconstruction_fraction = p > 0`` each row is, with probability ``p``, a reconstruction row
(denoiser at ``z_0``, value ``recon / p``) and otherwise a diffusion row (value ``diffusion / (1 - p)``), one
network call per row (Plaid's split of the batch, with a fixed instead of an adaptive fraction). With ``p = 0``
(the bound view) ``loss`` holds prior + diffusion and :meth:`PlaidObjective.reconstruction` draws the
reconstruction term, as the likelihood estimators expect of a continuous-time objective.

Deviations from Plaid, for the record: the schedule's shape is fixed (Plaid learns it with VDM's monotone network
to minimise the estimator's variance; only the endpoints matter for the bound, and they are learned here); no
output-bias warm-up, no MuP, no short-sequence packing; self-conditioning is decided per micro-batch.

Conditional generation (known positions, windows of :func:`genodiff.generate.conditioning.fill`) uses the
replacement method: at every step known positions are reset to a draw of ``q(z_s | x_known)``. It is an
approximation of the conditional (exact only when known and unknown positions are independent), unlike the
masked-diffusion samplers' exact conditioning.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from genodiff.data.genome import vocab as dna_vocab
from genodiff.diffusion.objectives import Denoiser, ObjectiveOutput
from genodiff.diffusion.process import discrete_times, stratified_times, uniform_times
from genodiff.diffusion.sampling import SampleOutput, _check_logits, _window_sampler, sample_categorical
from genodiff.diffusion.specs import config_from
from genodiff.diffusion.vocab import DiffusionVocab

__all__ = ["PlaidConfig", "PlaidObjective", "plaid_sample", "gaussian_prior_kl"]

SHAPES = ("linear", "cosine")


@dataclass
class PlaidConfig:
    """Plaid objective options (defaults: the paper's, except ``time_features`` and the fixed schedule shape).

    Attributes:
        embed_dim: D, the embedding dimension (even; Plaid: 16).
        gamma_0, gamma_1: initial ``gamma = -log SNR`` at t = 0 and t = 1 (Plaid: -3 and 6).
        learn_endpoints: train ``gamma_0`` and ``gamma_1`` with the bound (else fixed).
        shape: ``linear`` or ``cosine`` shape ``s(t)`` of ``gamma(t) = gamma_0 + (gamma_1 - gamma_0) s(t)``.
        self_conditioning: feed a first estimate of ``x_hat`` back to the network (module docstring).
        self_conditioning_prob: probability that a training micro-batch is self-conditioned (the bound view: 1).
        output_bias: add the Gaussian log-likelihood ``b_v`` to the network's logits (module docstring).
        time_conditioning: pass ``t`` to the denoiser too (the Fourier features of ``gamma(t)`` always go in).
        time_features: F, Fourier frequencies of ``gamma(t)`` in the network inputs (4 F channels).
        time: ``continuous`` (``L_inf``) or ``discrete`` (``L_T`` with ``num_timesteps`` steps).
        num_timesteps: T for ``time="discrete"``.
        antithetic: stratify sampled times over the batch.
        reconstruction_fraction: p of the training estimator (module docstring); 0 = reconstruction drawn by
            :meth:`PlaidObjective.reconstruction`, not inside ``loss``.
        rc_symmetric: ``E[comp(a)] = flip(E[a])`` (DNA); None = on for the DNA vocabulary.
    """

    embed_dim: int = 16
    gamma_0: float = -3.0
    gamma_1: float = 6.0
    learn_endpoints: bool = True
    shape: str = "linear"
    self_conditioning: bool = True
    self_conditioning_prob: float = 0.25
    output_bias: bool = True
    time_conditioning: bool = True
    time_features: int = 8
    time: str = "continuous"
    num_timesteps: int = 1000
    antithetic: bool = True
    reconstruction_fraction: float = 0.125
    rc_symmetric: Any = None


def gaussian_prior_kl(e: torch.Tensor, gamma_1: torch.Tensor) -> torch.Tensor:
    """``KL(N(alpha_1 e, sigma_1^2 I) || N(0, I))`` per position (nats), e [..., D], gamma_1 scalar or [...]:
    ``1/2 [alpha_1^2 ||e||^2 + D (sigma_1^2 - 1 - log sigma_1^2)]`` with ``sigma_1^2 - 1 = -alpha_1^2`` and
    ``-log sigma_1^2 = softplus(-gamma_1)`` (no cancellation)."""
    D = e.shape[-1]
    a2 = torch.sigmoid(-gamma_1)
    return 0.5 * (a2 * (e.pow(2).sum(-1) - D) + D * F.softplus(-gamma_1))


class PlaidObjective(torch.nn.Module):
    """The Plaid objective (module docstring): learned embeddings ``E`` and schedule endpoints, the VDM bound.

    ``loss(x0, attention_mask=None, t=None, *, denoiser=None, x_t=None, generator=None) -> ObjectiveOutput`` like
    every objective (:mod:`genodiff.diffusion.objectives`): ``x0`` LongTensor[B, L], ``t`` FloatTensor[B] or None
    (drawn, stratified), ``x_t`` an optional ``z_t`` FloatTensor[B, L, D] to use instead of a draw (only with
    ``reconstruction_fraction = 0``). ``nelbo_per_seq`` is one unbiased draw of each sequence's NELBO in nats
    (with ``reconstruction_fraction = 0``: prior + diffusion; add :meth:`reconstruction`), ``per_token`` its
    per-position parts, ``token_nll_sum`` the sum over scored positions of ``-log p_theta(x_l | z)`` at the
    evaluated noise level, ``num_masked`` = ``num_tokens`` (every scored position is noised).

    The learned parameters (``embedding`` (A, D) before normalisation, ``gamma_bounds`` (2,)) are an
    ``nn.Module``'s: the training module optimises and averages them with the backbone's and exports them next
    to the weights (``objective.safetensors``).
    """

    config_class = PlaidConfig
    is_likelihood = True

    def __init__(self, config: Any = None, vocab: DiffusionVocab | None = None, denoiser: Denoiser | None = None,
                 **kwargs):
        super().__init__()
        self.config = config_from(PlaidConfig, config, kwargs)
        c = self.config
        self.vocab = vocab if vocab is not None else DiffusionVocab.dna()
        object.__setattr__(self, "denoiser", denoiser)  # never registered as a submodule (its weights are not ours)
        if c.embed_dim < 2 or c.embed_dim % 2:
            raise ValueError(f"embed_dim must be an even number >= 2, got {c.embed_dim}")
        if c.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {c.shape!r}")
        if c.time not in ("continuous", "discrete"):
            raise ValueError(f"time must be 'continuous' or 'discrete', got {c.time!r}")
        if not float(c.gamma_0) < float(c.gamma_1):
            raise ValueError(f"need gamma_0 < gamma_1, got {c.gamma_0} and {c.gamma_1}")
        if not 0.0 <= c.reconstruction_fraction < 1.0 or not 0.0 <= c.self_conditioning_prob <= 1.0:
            raise ValueError("reconstruction_fraction must be in [0, 1) and self_conditioning_prob in [0, 1]")
        if c.time_features < 0 or c.num_timesteps < 1:
            raise ValueError("time_features must be >= 0 and num_timesteps >= 1")
        ids = torch.tensor(self.vocab.allowed_output_ids, dtype=torch.long)
        row_of = torch.full((self.vocab.size,), -1, dtype=torch.long)
        row_of[ids] = torch.arange(len(ids))
        self.register_buffer("allowed_ids", ids, persistent=False)
        self.register_buffer("row_of", row_of, persistent=False)
        comp_rows = self._rc_rows(ids) if c.rc_symmetric in (None, True) else None
        if c.rc_symmetric is True and comp_rows is None:
            raise ValueError("rc_symmetric needs the DNA vocabulary (allowed ids closed under the complement)")
        #: whether ``E[comp(a)] = flip(E[a])`` holds (``comp_rows``: row of each row's complement)
        self.rc_symmetric = comp_rows is not None
        if self.rc_symmetric:
            self.register_buffer("comp_rows", comp_rows, persistent=False)
        freqs = torch.exp(torch.linspace(-5.0, 5.0, c.time_features, dtype=torch.float64))
        self.register_buffer("frequencies", freqs, persistent=False)
        w = torch.randn(len(ids), c.embed_dim)
        self.embedding = torch.nn.Parameter(w / w.norm(dim=-1, keepdim=True))  # Plaid's init: unit-norm rows
        bounds = torch.tensor([float(c.gamma_0), float(c.gamma_1)])
        self.gamma_bounds = torch.nn.Parameter(bounds, requires_grad=bool(c.learn_endpoints))

    def _rc_rows(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Row of each allowed id's complement, or None unless the vocabulary is DNA's."""
        if self.vocab.size != dna_vocab.VOCAB_SIZE or not set(ids.tolist()) <= set(dna_vocab.DNA_IDS_WITH_N):
            return None
        comp = torch.as_tensor(list(dna_vocab.COMPLEMENT_MAP), dtype=torch.long)[ids]
        rows = {int(i): r for r, i in enumerate(ids.tolist())}
        if any(int(c) not in rows for c in comp):
            return None
        return torch.tensor([rows[int(c)] for c in comp], dtype=torch.long)

    # ------------------------------------------------------------------------------------- parts
    @property
    def input_dim(self) -> int:
        """C = 2 D + 4 F: the network's input channels (``model.input_dim``)."""
        return 2 * self.config.embed_dim + 4 * self.config.time_features

    def embeddings(self) -> torch.Tensor:
        """The token embeddings ``E`` (A, D): rows of unit norm, ``E[comp(a)] = flip(E[a])`` with rc_symmetric."""
        w = self.embedding
        if self.rc_symmetric:
            w = 0.5 * (w + w[self.comp_rows].flip(-1))
        return w / (w.norm(dim=-1, keepdim=True) + 1e-8)

    def gamma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma(t), gamma'(t))``, float64 like ``t`` ([B] or any shape; t in [0, 1])."""
        t = torch.as_tensor(t, dtype=torch.float64, device=self.gamma_bounds.device)
        g0, g1 = self.gamma_bounds.double().unbind()
        if self.config.shape == "linear":
            s, ds = t, torch.ones_like(t)
        else:
            s, ds = 0.5 * (1.0 - torch.cos(math.pi * t)), 0.5 * math.pi * torch.sin(math.pi * t)
        return g0 + (g1 - g0) * s, (g1 - g0) * ds

    def endpoints(self) -> tuple[float, float]:
        """``(gamma_0, gamma_1)`` as floats."""
        g0, g1 = self.gamma_bounds.detach().double().tolist()
        return g0, g1

    def model_inputs(self, z: torch.Tensor, x_sc: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """Network inputs (B, L, C) from ``z`` and ``x_sc`` (B, L, D) and ``gamma`` [B] (module docstring)."""
        D, h = self.config.embed_dim, self.config.embed_dim // 2
        a2, s2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        zs = z * torch.rsqrt(a2 / D + s2).to(z.dtype)[:, None, None]
        xs = x_sc.to(z.dtype) * math.sqrt(D)
        f = gamma[:, None] * self.frequencies.to(gamma.device)[None]
        f = torch.cat([torch.sin(f), torch.cos(f)], dim=-1).to(z.dtype)[:, None, :].expand(-1, z.shape[1], -1)
        return torch.cat([zs[..., :h], xs[..., :h], f, f.flip(-1), xs[..., h:], zs[..., h:]], dim=-1)

    def split_inputs(self, v: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`model_inputs`: ``(z, x_sc)`` (B, L, D) from inputs (B, L, C) and ``gamma`` [B]."""
        D, h, F2 = self.config.embed_dim, self.config.embed_dim // 2, 2 * self.config.time_features
        a2, s2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        zs = torch.cat([v[..., :h], v[..., h + h + 2 * F2 + h:]], dim=-1)
        xs = torch.cat([v[..., h:2 * h], v[..., 2 * h + 2 * F2:2 * h + 2 * F2 + h]], dim=-1)
        return zs * torch.sqrt(a2 / D + s2).to(v.dtype)[:, None, None], xs / math.sqrt(D)

    def token_embeddings(self, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """``E[x]`` (B, L, D) at positions ``where`` (BoolTensor[B, L]), 0 elsewhere."""
        e = self.embeddings()[self.row_of[x].clamp(min=0)]
        return e * where[..., None].to(e.dtype)

    def log_probs(self, denoiser: Denoiser, z: torch.Tensor, x_sc: torch.Tensor, t: torch.Tensor,
                  gamma: torch.Tensor) -> torch.Tensor:
        """``log p_theta(v | z, t)`` over the allowed ids (B, L, A), float32 or wider: one network call."""
        v = self.model_inputs(z, x_sc, gamma)
        raw = denoiser(v, t.to(torch.float32) if self.config.time_conditioning else None)
        if raw.shape[:2] != z.shape[:2] or raw.shape[-1] < self.vocab.size:
            raise ValueError(f"denoiser returned {tuple(raw.shape)}; expected (B, L, >= {self.vocab.size})")
        logits = raw[..., self.allowed_ids].to(torch.promote_types(raw.dtype, torch.float32))
        if self.config.output_bias:
            E = self.embeddings().to(logits.dtype)
            g = gamma.to(logits.dtype)[:, None, None]
            a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
            logits = logits + (a2.sqrt() * (z.to(logits.dtype) @ E.T) - 0.5 * a2 * E.pow(2).sum(-1)) / s2
        return torch.log_softmax(logits, dim=-1)

    def predict(self, denoiser: Denoiser, z: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor,
                active: torch.Tensor, self_condition: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p_theta (B, L, A), x_hat (B, L, D))`` at ``(z, t)``; ``active`` [B, L] marks positions with a
        state (``x_sc`` is 0 elsewhere). ``self_condition``: first a pass with ``x_sc = 0`` (no gradient)."""
        E = self.embeddings()
        x_sc = torch.zeros_like(z)
        if self_condition:
            with torch.no_grad():
                first = self.log_probs(denoiser, z, x_sc, t, gamma)
                x_sc = (first.exp().to(E.dtype) @ E) * active[..., None].to(E.dtype)
        logp = self.log_probs(denoiser, z, x_sc.detach(), t, gamma)
        return logp, logp.exp().to(E.dtype) @ E

    def diffusion_weight(self, t: torch.Tensor, gamma: torch.Tensor, dgamma: torch.Tensor) -> torch.Tensor:
        """Weight of ``||e - x_hat||^2`` per position, [B] float64: continuous ``1/2 gamma' exp(-gamma) =
        -SNR'(t)/2``; discrete ``T/2 (SNR(s) - SNR(t)) = T/2 exp(-gamma_t) expm1(gamma_t - gamma_s)``."""
        if self.config.time == "continuous":
            return 0.5 * dgamma * torch.exp(-gamma)
        T = self.config.num_timesteps
        g_s, _ = self.gamma((t.double() - 1.0 / T).clamp(min=0.0))
        return 0.5 * T * torch.exp(-gamma) * torch.expm1(gamma - g_s)

    # ------------------------------------------------------------------------------------- time
    def times_from_u(self, u: torch.Tensor) -> torch.Tensor:
        """Continuous: ``t = u``. Discrete: ``t = i / T`` with ``i = floor(u T) + 1``."""
        return discrete_times(u, self.config.num_timesteps) if self.config.time == "discrete" else u

    def sample_t(self, batch_size: int, *, generator=None, device=None, dtype=torch.float32,
                 global_batch_size: int | None = None, offset: int = 0) -> torch.Tensor:
        """Training times [B]: stratified over the global batch when its size is given (or with ``antithetic``)."""
        if global_batch_size is not None or self.config.antithetic:
            u = stratified_times(batch_size, global_batch_size, offset, generator=generator, device=device, dtype=dtype)
        else:
            u = uniform_times(batch_size, generator=generator, device=device, dtype=dtype)
        return self.times_from_u(u)

    # ------------------------------------------------------------------------------------- bound
    def _denoiser(self, denoiser):
        d = denoiser if denoiser is not None else self.denoiser
        if d is None:
            raise ValueError("no denoiser: pass denoiser= to loss() or to the constructor")
        return d

    def _self_condition(self, generator, device) -> bool:
        """Whether this evaluation self-conditions: always (prob 1), never, or with ``self_conditioning_prob``."""
        c = self.config
        if not c.self_conditioning or c.self_conditioning_prob <= 0.0:
            return False
        if c.self_conditioning_prob >= 1.0:
            return True
        return bool(torch.rand((), generator=generator, device=device, dtype=torch.float64) < c.self_conditioning_prob)

    def _noise(self, shape, like: torch.Tensor, generator) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def loss(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None, t: torch.Tensor | None = None, *,
             denoiser: Denoiser | None = None, x_t: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> ObjectiveOutput:
        den = self._denoiser(denoiser)
        c = self.config
        B, L = x0.shape
        scored = self.vocab.scorable(x0, attention_mask)
        if t is None:
            t = self.sample_t(B, generator=generator, device=x0.device)
        t = t.to(torch.float64)
        e = self.token_embeddings(x0, scored)
        p = float(c.reconstruction_fraction)
        if p > 0:
            if x_t is not None:
                raise ValueError("x_t needs reconstruction_fraction = 0 (each row's noise level is drawn)")
            recon_rows = torch.rand(B, generator=generator, device=x0.device, dtype=torch.float64) < p
            t_used = torch.where(recon_rows, torch.zeros_like(t), t)
        else:
            recon_rows, t_used = None, t
        gamma, dgamma = self.gamma(t_used)
        if x_t is None:
            a, s = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
            z = a.to(e.dtype)[:, None, None] * e + s.to(e.dtype)[:, None, None] * self._noise(e.shape, e, generator)
            z = z * scored[..., None].to(e.dtype)
        else:
            z = x_t
        logp, x_hat = self.predict(den, z, t_used, gamma, scored, self._self_condition(generator, x0.device))
        zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
        nll = torch.where(scored, -logp.gather(-1, self.row_of[x0].clamp(min=0)[..., None]).squeeze(-1), zero)
        mse = (e - x_hat).pow(2).sum(-1).to(logp.dtype)
        w = self.diffusion_weight(t_used, gamma, dgamma).to(logp.dtype)
        diffusion = torch.where(scored, w[:, None] * mse, zero)
        prior = torch.where(scored, gaussian_prior_kl(e.to(logp.dtype), self.gamma_bounds[1].to(logp.dtype)), zero)
        if recon_rows is not None:
            per_token = torch.where(recon_rows[:, None], nll / p, diffusion / (1.0 - p)) + prior
        else:
            per_token = diffusion + prior
        n = scored.sum(-1)
        return ObjectiveOutput(per_token.sum(-1), n, nll.sum(-1), n, per_token, t)

    forward = loss

    def reconstruction(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                       denoiser: Denoiser | None = None, x_t: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of ``-log p_theta(x | z_0)``, ``z_0 ~ q(z_0 | x)`` (or ``x_t``), nats FloatTensor[B] float64;
        zeros (no draw, no call) when ``reconstruction_fraction > 0``: ``loss`` holds the term then."""
        B = x0.shape[0]
        if self.config.reconstruction_fraction > 0:
            return torch.zeros(B, dtype=torch.float64, device=x0.device)
        scored = self.vocab.scorable(x0, attention_mask)
        t0 = torch.zeros(B, dtype=torch.float64, device=x0.device)
        gamma, _ = self.gamma(t0)
        e = self.token_embeddings(x0, scored)
        if x_t is None:
            a, s = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
            x_t = (a.to(e.dtype)[:, None, None] * e + s.to(e.dtype)[:, None, None] * self._noise(e.shape, e, generator))
            x_t = x_t * scored[..., None].to(e.dtype)
        selfcond = self._self_condition(generator, x0.device)
        logp, _ = self.predict(self._denoiser(denoiser), x_t, t0, gamma, scored, selfcond)
        nll = -logp.gather(-1, self.row_of[x0].clamp(min=0)[..., None]).squeeze(-1)
        return torch.where(scored, nll, torch.zeros((), dtype=nll.dtype, device=nll.device)).sum(-1).double()

    def prior(self, x0: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The prior term ``KL(q(z_1 | x) || N(0, I))`` of each sequence, nats FloatTensor[B] (exact)."""
        scored = self.vocab.scorable(x0, attention_mask)
        kl = gaussian_prior_kl(self.token_embeddings(x0, scored), self.gamma_bounds[1].to(self.embedding.dtype))
        return torch.where(scored, kl, torch.zeros((), dtype=kl.dtype, device=kl.device)).sum(-1)

    def bound_objective(self) -> "PlaidObjective":
        """This objective as the bound of the model the sampler samples: every evaluation self-conditioned (when
        ``self_conditioning``), the reconstruction term drawn by :meth:`reconstruction`. Shares the parameters."""
        view = copy.copy(self)
        view.config = dataclasses.replace(self.config, reconstruction_fraction=0.0, self_conditioning_prob=1.0)
        return view

    # ------------------------------------------------------------------------------------- sampling
    def sample(self, denoiser: Denoiser, batch_size: int | None = None, length: int | None = None,
               **kwargs) -> SampleOutput:
        """:func:`plaid_sample` with this objective (same keyword arguments)."""
        return plaid_sample(denoiser, self.vocab, batch_size, length, objective=self, **kwargs)

    def expected_sample_calls(self, num_steps: int) -> int:
        """Denoiser calls of one :meth:`sample` window: ``num_steps`` reverse steps and the decoding evaluation,
        each two calls with self-conditioning."""
        return (int(num_steps) + 1) * (2 if self.config.self_conditioning else 1)


@torch.no_grad()
def _plaid_core(denoiser: Denoiser, vocab: DiffusionVocab, z_ids: torch.Tensor, generator: torch.Generator, *,
                objective: PlaidObjective, num_steps: int = 256, decode: str = "sample") -> SampleOutput:
    """Ancestral sampling of the Gaussian reverse process (VDM): ``z_1 ~ N(0, I)``, then for ``t = k/N -> s =
    (k-1)/N``, ``z_s ~ q(z_s | z_t, x = x_hat(z_t, t))``::

        mean = (alpha_s / alpha_t)(1 - c) z_t + alpha_s c x_hat,   var = c sigma_s^2,   c = -expm1(gamma_s - gamma_t)

    and finally ``x ~ p_theta(x | z_0)`` (``decode="sample"``, inverse-CDF in float64) or its argmax
    (``decode="argmax"``, not the model's law). With self-conditioning every evaluation takes two calls, as in the
    bound. Known positions of ``z_ids`` (not ``[MASK]``) are kept; allowed ones steer the others by replacement
    (module docstring), the rest (``N``, padding) have no state. Called like every sampler (front end
    :func:`genodiff.diffusion.sampling._window_sampler`) with options ``objective``, ``num_steps``, ``decode``.
    """
    if decode not in ("sample", "argmax"):
        raise ValueError(f"decode must be 'sample' or 'argmax', got {decode!r}")
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    obj = objective
    B, L = z_ids.shape
    dev = z_ids.device
    known = z_ids != vocab.mask_id
    anchored = known & vocab.allowed_mask(dev)[z_ids]
    active = ~known | anchored
    e_known = obj.token_embeddings(z_ids, anchored)
    dt = e_known.dtype
    act = active[..., None].to(dt)
    selfcond = bool(obj.config.self_conditioning)
    state = {"calls": 0, "step": 0, "t": 1.0}

    def checked(v, t):
        out = denoiser(v, t)
        state["calls"] += 1
        _check_logits(out, "plaid", state["step"], num_steps + 1, state["t"], state["calls"])
        return out

    z = obj._noise(e_known.shape, e_known, generator) * act
    for k in range(num_steps, 0, -1):
        state["step"], state["t"] = num_steps - k + 1, k / num_steps
        t = torch.full((B,), k / num_steps, dtype=torch.float64, device=dev)
        s = torch.full((B,), (k - 1) / num_steps, dtype=torch.float64, device=dev)
        g_t, _ = obj.gamma(t)
        g_s, _ = obj.gamma(s)
        _, x_hat = obj.predict(checked, z, t, g_t, active, selfcond)
        c = -torch.expm1(g_s - g_t)
        a_s, a_t = torch.sigmoid(-g_s).sqrt(), torch.sigmoid(-g_t).sqrt()
        sig_s = torch.sigmoid(g_s).sqrt()
        mean = ((a_s / a_t) * (1.0 - c)).to(dt)[:, None, None] * z + (a_s * c).to(dt)[:, None, None] * x_hat
        z = mean + (c * sig_s.pow(2)).sqrt().to(dt)[:, None, None] * obj._noise(z.shape, z, generator)
        known_z = a_s.to(dt)[:, None, None] * e_known + sig_s.to(dt)[:, None, None] * obj._noise(z.shape, z, generator)
        z = torch.where(anchored[..., None], known_z, z) * act
    state["step"], state["t"] = num_steps + 1, 0.0
    t0 = torch.zeros(B, dtype=torch.float64, device=dev)
    g0, _ = obj.gamma(t0)
    logp, _ = obj.predict(checked, z, t0, g0, active, selfcond)
    context = f"plaid sampler, decoding at t=0, denoiser call {state['calls']}"
    if decode == "argmax":
        rows = logp.argmax(-1)
    else:
        u = torch.rand((B, L), generator=generator, dtype=torch.float64, device=dev)
        rows = sample_categorical(logp.double().exp(), u, context=context)
    tokens = torch.where(known, z_ids, obj.allowed_ids[rows])
    return SampleOutput(tokens, state["calls"], num_steps)


plaid_sample: Callable[..., SampleOutput] = _window_sampler(_plaid_core)
