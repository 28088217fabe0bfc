"""Likelihood estimation: NELBO (upper bound on -log p(x)) with standard errors.

:func:`estimate_nelbo` evaluates an objective's single-sample integrand K times per sequence and
returns, per sequence, the mean NELBO in nats and its standard error. Time samples:

* ``"antithetic"`` (default) -- stratified ``t_k = (k + u_k)/K``, k = 0..K-1 (unbiased; the
  reported standard error is the i.i.d. formula ``std/sqrt(K)``, conservative for stratified draws);
* ``"iid"`` -- ``t_k ~ U[0, 1)``;
* ``"quadrature"`` -- Gauss-Legendre nodes ``t_j`` on [0, 1] with ``draws_per_node`` independent
  masks each; the estimate ``sum_j w_j mean_d f(t_j, z_jd)`` is unbiased for the quadrature rule
  (whose error is negligible for smooth schedules) and its standard error is
  ``sqrt(sum_j w_j^2 s_j^2 / draws_per_node)``. Continuous-time objectives only.

* ``"num_masked"`` -- time-agnostic estimator for MDLM without time conditioning: draw the number
  of masked tokens ``k`` stratified over ``1..n`` (n = scored tokens), mask a uniformly random
  k-subset and weight the masked cross-entropy by ``n / k``. Integrating eq. 10/11 over t
  (``int_0^1 w(t) t^k (1-t)^(n-k) ... dt`` after substituting ``alpha``) shows
  ``NELBO = E_{k ~ U{1..n}} E_{|M| = k}[(n/k) sum_{l in M} -log x_theta(z_M)_l[x^l]]`` for *every*
  schedule, so this is unbiased for the same quantity with finite variance.

Variance note: with the log-linear schedule the single-draw integrand ``w(t) * masked CE`` has
infinite (log-divergent) variance near t = 0 (``w = 1/t`` while the chance that anything is
masked is ~ n t): the estimate is unbiased but its standard error is unreliable. Prefer
``"num_masked"`` (or a schedule with ``1 - alpha_t = O(t^2)`` such as ``cosine``) for evaluation.

The full integral over t in [0, 1] is estimated (no ``sampling_eps`` truncation). For discrete-time
objectives (MDLM ``time="discrete"``, D3PM) strata are over the step index. The AR objective is
exact (K = 1, standard error 0).

What is bounded, for every schedule: ``-log p_theta(x)`` of the model the samplers sample, the reverse
process started from all-[MASK] at t = 1. The time-based methods evaluate the objective's
:meth:`~genodiff.diffusion.objectives.MDLMObjective.bound_objective` -- the forward process conditioned on
all-[MASK] at t = 1, so there is no prior term (against that start the plain process's prior KL is infinite
when ``alpha(1) > 0``, and the plain integral without it falls below ``-log p``: ~0.002 bits/token for the
default log-linear ``eps = 1e-3``) -- and, in continuous time with ``alpha(0) < 1``, add one draw of the
reconstruction term ``-log p_theta(x | z_0)`` per draw (one more denoiser call when something is masked at
t = 0). ``"num_masked"`` is schedule-free: the bound of the model that reveals positions one at a time in a
uniformly random order (the first-hitting sampler's law for a denoiser without time conditioning), which is
the continuous-time model whenever ``alpha(0) = 1``. With the exact denoiser and ``alpha(0) = 1`` every method
is unbiased for ``-log p(x)`` itself (tests/diffusion/test_exact_nelbo.py, test_likelihood.py).

Non-finite values: a NaN or infinite draw raises :class:`~genodiff.errors.NonFiniteError` naming the method and
the draw, never a NaN estimate. With K = 1 draw the standard error is NaN (unavailable), not 0.

Corpus-level numbers: :attr:`NELBOEstimate.nats_per_token` (total NELBO / total tokens),
``bits_per_token = nats_per_token / ln 2`` and ``perplexity_bound = exp(nats_per_token)``, an upper
bound on the model's perplexity in expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genodiff.diffusion.objectives import ARObjective, D3PMObjective, Denoiser, MDLMObjective
from genodiff.diffusion.process import discrete_times
from genodiff.errors import NonFiniteError

__all__ = ["NELBOEstimate", "estimate_nelbo", "gauss_legendre_01", "mean_and_stderr", "default_method",
           "bound_objective", "check_finite"]


@dataclass
class NELBOEstimate:
    """Per-sequence NELBO estimates.

    nelbo: FloatTensor[B], nats (mean over draws). stderr: FloatTensor[B], nats.
    num_tokens: LongTensor[B], scored positions. samples: FloatTensor[B, K] per-draw values
    (for quadrature: the weighted per-node means times the number of nodes, whose mean is the estimate).
    """

    nelbo: torch.Tensor
    stderr: torch.Tensor
    num_tokens: torch.Tensor
    samples: torch.Tensor

    @property
    def nats_per_token(self) -> float:
        return float(self.nelbo.sum() / self.num_tokens.sum().clamp(min=1))

    @property
    def nats_per_token_stderr(self) -> float:
        return float(self.stderr.pow(2).sum().sqrt() / self.num_tokens.sum().clamp(min=1))

    @property
    def bits_per_token(self) -> float:
        return self.nats_per_token / math.log(2.0)

    @property
    def perplexity_bound(self) -> float:
        return math.exp(self.nats_per_token)


def gauss_legendre_01(n: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1); exact for degree <= 2n-1."""
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2, dtype=dtype), torch.tensor(w / 2, dtype=dtype)


def _is_discrete(objective) -> bool:
    return isinstance(objective, D3PMObjective) or getattr(objective.config, "time", "continuous") == "discrete"


def mean_and_stderr(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean of ``samples`` [B, K] and its i.i.d. standard error ``std / sqrt(K)`` (NaN for K = 1)."""
    K = samples.shape[1]
    mean = samples.mean(1)
    se = samples.std(1, unbiased=True) / math.sqrt(K) if K > 1 else torch.full_like(mean, float("nan"))
    return mean, se


def default_method(objective) -> str:
    """``num_masked`` for a continuous-time MDLM without time conditioning (finite variance for every
    schedule), else ``antithetic``."""
    cfg = getattr(objective, "config", None)
    if isinstance(objective, MDLMObjective) and not cfg.time_conditioning and cfg.time == "continuous":
        return "num_masked"
    return "antithetic"


def bound_objective(objective):
    """The objective whose NELBO bounds the sampled model (see the module docstring); AR: itself."""
    make = getattr(objective, "bound_objective", None)
    return make() if make is not None else objective


def check_finite(values: torch.Tensor, what: str) -> torch.Tensor:
    """``values`` when all are finite, else :class:`NonFiniteError` ``"<what>: non-finite NELBO ..."``."""
    if not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise NonFiniteError(f"{what}: non-finite NELBO ({bad} of {values.numel()} sequences NaN or infinite); "
                             "the denoiser returned NaN/inf logits or gave a scored token probability 0")
    return values


def _times_from_u(objective, u: torch.Tensor) -> torch.Tensor:
    if _is_discrete(objective):
        return discrete_times(u, objective.config.num_timesteps)
    return u.clamp(min=torch.finfo(u.dtype).tiny)


@torch.no_grad()
def estimate_nelbo(
    objective,
    denoiser: Denoiser,
    x0: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_samples: int = 32,
    method: str = "antithetic",
    *,
    draws_per_node: int = 2,
    generator: torch.Generator | None = None,
    time_dtype: torch.dtype = torch.float64,
) -> NELBOEstimate:
    """Estimate each sequence's NELBO (nats) with ``num_samples`` objective evaluations.

    Args:
        objective: an objective from :mod:`genodiff.diffusion.objectives`.
        denoiser: ``(x_t, t | None) -> logits[B, L, V]``.
        x0: LongTensor[B, L]; attention_mask: optional [B, L] (padding is not scored).
        num_samples: K draws per sequence (quadrature: K // draws_per_node nodes).
        method: ``"antithetic"``, ``"iid"``, ``"quadrature"`` or ``"num_masked"`` (module docstring).
    Returns:
        :class:`NELBOEstimate`. One denoiser call per draw, on the whole batch (two in continuous time with
        ``alpha(0) < 1`` when something is masked at t = 0: the reconstruction term).
    Raises:
        :class:`~genodiff.errors.NonFiniteError` when a draw is NaN or infinite (message: method and draw).
    """
    B = x0.shape[0]
    dev = x0.device
    if isinstance(objective, ARObjective):
        out = objective.loss(x0, attention_mask, denoiser=denoiser)
        v = check_finite(out.nelbo_per_seq.double(), "estimate_nelbo (AR, exact NLL)")
        return NELBOEstimate(v, torch.zeros_like(v), out.num_tokens, v[:, None])
    if method == "num_masked":
        return _estimate_num_masked(objective, denoiser, x0, attention_mask, num_samples, generator)
    objective = bound_objective(objective)

    def draw(t, index, total):
        out = objective.loss(x0, attention_mask, t, denoiser=denoiser, generator=generator)
        value = out.nelbo_per_seq.double() + objective.reconstruction(x0, attention_mask, denoiser=denoiser,
                                                                      generator=generator)
        return check_finite(value, f"estimate_nelbo (method={method}), draw {index} of {total} "
                                   f"(t={float(t.min()):.4g}..{float(t.max()):.4g})"), out

    if method in ("antithetic", "iid"):
        K = num_samples
        u = torch.rand((B, K), generator=generator, dtype=time_dtype, device=dev)
        if method == "antithetic":
            u = (torch.arange(K, dtype=time_dtype, device=dev)[None] + u) / K
        vals = []
        for k in range(K):
            t = _times_from_u(objective, u[:, k])
            v, out = draw(t, k + 1, K)
            vals.append(v)
        samples = torch.stack(vals, 1)
        mean, se = mean_and_stderr(samples)
        return NELBOEstimate(mean, se, out.num_tokens, samples)
    if method == "quadrature":
        if _is_discrete(objective):
            raise ValueError("quadrature is for continuous-time objectives; use method='antithetic'")
        if draws_per_node < 2:
            raise ValueError("draws_per_node must be >= 2 to report a standard error")
        n = max(1, num_samples // draws_per_node)
        nodes, weights = gauss_legendre_01(n, time_dtype)
        means, variances = [], []
        for j, tj in enumerate(nodes):
            vals = []
            for d in range(draws_per_node):
                t = torch.full((B,), float(tj), dtype=time_dtype, device=dev)
                v, out = draw(t, j * draws_per_node + d + 1, n * draws_per_node)
                vals.append(v)
            v = torch.stack(vals, 1)
            means.append(v.mean(1))
            variances.append(v.var(1, unbiased=True))
        m = torch.stack(means, 1)  # [B, n]
        var = torch.stack(variances, 1)
        w = weights.to(dev)
        est = (m * w).sum(1)
        se = ((var * w**2).sum(1) / draws_per_node).sqrt()
        return NELBOEstimate(est, se, out.num_tokens, m * w * n)
    raise ValueError(f"unknown method {method!r}")


def _estimate_num_masked(objective, denoiser, x0, attention_mask, K, generator) -> NELBOEstimate:
    if not isinstance(objective, MDLMObjective) or _is_discrete(objective) or objective.config.time_conditioning:
        raise ValueError("method='num_masked' needs a continuous-time MDLM objective without time conditioning")
    B, L = x0.shape
    dev = x0.device
    vocab = objective.vocab
    scored = vocab.scorable(x0, attention_mask)
    n = scored.sum(-1)  # [B]
    u = (torch.arange(K, dtype=torch.float64, device=dev)[None] + torch.rand((B, K), generator=generator, dtype=torch.float64, device=dev)) / K
    vals = []
    for j in range(K):
        k = (torch.floor(u[:, j] * n).long() + 1).clamp(max=n.clamp(min=1))  # stratified over 1..n
        keys = torch.rand((B, L), generator=generator, dtype=torch.float64, device=dev).masked_fill(~scored, 2.0)
        rank = keys.argsort(-1).argsort(-1)
        masked = (rank < k[:, None]) & scored
        x_t = torch.where(masked, torch.full_like(x0, vocab.mask_id), x0)
        t_dummy = torch.ones(B, dtype=torch.float64, device=dev)
        out = objective.loss(x0, attention_mask, t_dummy, denoiser=denoiser, x_t=x_t)
        v = torch.where(n > 0, out.token_nll_sum.double() * n / k, torch.zeros((), dtype=torch.float64, device=dev))
        vals.append(check_finite(v, f"estimate_nelbo (method=num_masked), draw {j + 1} of {K}"))
    samples = torch.stack(vals, 1)
    mean, se = mean_and_stderr(samples)
    return NELBOEstimate(mean, se, n, samples)
