"""Per-sequence NELBO with explicit random draws (common random numbers, mirrored draws for RC checks).

The NELBO (negative evidence lower bound, nats) upper-bounds ``-log p(x)``. For a length-L window we draw
K random *draws* once and reuse them for every sequence of that length:

* ``method="num_masked"`` (MDLM without time conditioning; the default there): draw ``k``-th stratum
  ``u_k = (k + U_k)/K`` and per-position keys ``keys[k, l] ~ U[0, 1)``. For a sequence with n scorable
  bases, mask the ``m = floor(u_k n) + 1`` scorable positions with the smallest keys and take
  ``(n / m) * sum_masked -log x_theta(z)_l[x_l]``. Its mean over ``k ~ U{1..n}`` equals the continuous-time
  MDLM NELBO for every schedule (see :mod:`genodiff.diffusion.likelihood`), so this is the same unbiased
  estimator as ``estimate_nelbo(..., method="num_masked")`` with the randomness made explicit.
* ``method="antithetic"`` (time-conditioned or discrete-time objectives): ``t_k = (k + U_k)/K``, mask
  position l when ``keys[k, l] < 1 - alpha~(t_k)``, value = the integrand of the objective's bound view at
  ``(t_k, z)`` (``alpha~``: the schedule conditioned on all-[MASK] at t = 1, the samplers' start; see
  :mod:`genodiff.diffusion.likelihood`), plus, in continuous time with ``alpha(0) < 1``, the reconstruction
  term with the positions ``keys[k, l] < 1 - alpha~(0)`` masked (a subset of the first mask: the same keys).

Both are unbiased for an upper bound on ``-log p_theta(x)`` of the sampled model, for every schedule. A NaN or
infinite value raises :class:`~genodiff.errors.NonFiniteError` (never a NaN score).

Standard error: ``std_k / sqrt(K)`` (conservative for stratified draws; NaN, i.e. unavailable, for K = 1).
Shared draws make paired comparisons (ref vs alt allele, a sequence vs its reverse complement with
:meth:`Draws.mirrored`) far less noisy than independent estimates: for an exactly RC-equivariant model
(Caduceus-PS), a sequence scored with draws D and its reverse complement scored with ``D.mirrored()`` give
the same value up to float rounding.
Positions that are not A/C/G/T (``N``) are context only: never masked, never scored.

:func:`nelbo_on_batches` is the held-out evaluation of ``genodiff evaluate`` (DNA and text alike): the
diffusion core's :func:`~genodiff.diffusion.likelihood.estimate_nelbo` on every batch, aggregated in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from genodiff.diffusion.likelihood import (
    NELBOEstimate,
    bound_objective,
    check_finite,
    default_method,
    estimate_nelbo,
    mean_and_stderr,
)
from genodiff.diffusion.objectives import ARObjective, MDLMObjective
from genodiff.errors import NonFiniteError

__all__ = ["Draws", "make_draws", "pick_method", "nelbo_with_draws", "nelbo_on_batches", "LN2"]

LN2 = math.log(2.0)


@dataclass
class Draws:
    """Random numbers for K estimator draws on windows of length L (float64): ``u`` [K], ``keys`` [K, L].

    ``index`` (LongTensor[B, L] or None): per-row position permutations (:meth:`permuted`); row b, position
    l then uses ``keys[k, index[b, l]]``. None: every row uses ``keys[k]`` as is."""

    u: torch.Tensor
    keys: torch.Tensor
    method: str
    index: torch.Tensor | None = None

    @property
    def K(self) -> int:
        return int(self.u.shape[0])

    def row_keys(self, k: int, B: int) -> torch.Tensor:
        """Keys of draw k for a batch of B rows: FloatTensor[B, L]."""
        return self.keys[k].expand(B, -1) if self.index is None else self.keys[k][self.index]

    def mirrored(self) -> "Draws":
        """The same draws with position l mapped to L-1-l (for scoring a reverse complement)."""
        if self.index is not None:
            return Draws(self.u, self.keys, self.method, torch.flip(self.index, dims=[-1]))
        return Draws(self.u, torch.flip(self.keys, dims=[-1]), self.method)

    def permuted(self, index: torch.Tensor) -> "Draws":
        """Per-row position permutations: row b, position l gets the key of position ``index[b, l]``.

        ``index``: LongTensor[B, L], each row a permutation of ``0..L-1`` fixed before the draws are seen.
        A fixed permutation of i.i.d. U[0, 1) keys is again i.i.d. U[0, 1), so each row's estimate stays
        unbiased; the point is the coupling: a base that sits at position l in one window and at position
        l' in another (the ref and alt windows of an indel) gets the same key in both, hence the same
        masked / unmasked state in every draw (common random numbers). :meth:`mirrored` is the special case
        ``index[b, l] = L - 1 - l``. The keys are gathered per draw (memory O(B L), not O(K B L)).
        """
        if self.index is not None:
            raise ValueError("permuted: draws are already per-row")
        index = torch.as_tensor(index, dtype=torch.long, device=self.keys.device)
        L = self.keys.shape[-1]
        if index.dim() != 2 or index.shape[1] != L:
            raise ValueError(f"permuted: index must be [B, {L}], got {tuple(index.shape)}")
        if not torch.equal(index.sort(dim=1).values, torch.arange(L, device=index.device).expand_as(index)):
            raise ValueError("permuted: every row of index must be a permutation of 0..L-1")
        return Draws(self.u, self.keys, self.method, index)

    def to(self, device) -> "Draws":
        index = None if self.index is None else self.index.to(device)
        return Draws(self.u.to(device), self.keys.to(device), self.method, index)


def pick_method(objective, requested: str = "auto") -> str:
    """``auto``: ``num_masked`` for continuous-time MDLM without time conditioning, else ``antithetic``."""
    return default_method(objective) if requested == "auto" else requested


def make_draws(K: int, L: int, method: str, seed: int) -> Draws:
    """K stratified draws for windows of length L from ``torch.Generator().manual_seed(seed)`` (CPU, float64)."""
    if K < 1:
        raise ValueError("num_samples must be >= 1")
    g = torch.Generator().manual_seed(int(seed))
    u = (torch.arange(K, dtype=torch.float64) + torch.rand(K, generator=g, dtype=torch.float64)) / K
    keys = torch.rand((K, L), generator=g, dtype=torch.float64)
    return Draws(u, keys, method)


@torch.no_grad()
def nelbo_with_draws(objective, denoiser, x0: torch.Tensor, draws: Draws) -> NELBOEstimate:
    """NELBO of each row of ``x0`` (LongTensor[B, L]) using ``draws`` (shared by all rows, or permuted per
    row: :meth:`Draws.permuted`).

    The AR objective is exact (K = 1 value, stderr 0). Returns float64 CPU tensors.
    """
    if isinstance(objective, ARObjective):
        out = objective.loss(x0, None, denoiser=denoiser)
        v = check_finite(out.nelbo_per_seq.double().cpu(), "nelbo_with_draws (AR, exact NLL)")
        return NELBOEstimate(v, torch.zeros_like(v), out.num_tokens.cpu(), v[:, None])
    B, L = x0.shape
    if draws.keys.shape[-1] != L:
        raise ValueError(f"draws are for length {draws.keys.shape[-1]}, sequences have length {L}")
    if draws.index is not None and draws.index.shape[0] != B:
        raise ValueError(f"per-row draws are for {draws.index.shape[0]} rows, the batch has {B}")
    dev = x0.device
    d = draws.to(dev)
    vocab = objective.vocab
    bound = bound_objective(objective) if d.method in ("antithetic", "iid") else objective
    scored = vocab.scorable(x0, None)
    n = scored.sum(-1)
    vals = []
    for k in range(d.K):
        keys = d.row_keys(k, B)
        if d.method == "num_masked":
            if not isinstance(objective, MDLMObjective) or objective.config.time_conditioning:
                raise ValueError("method=num_masked needs an MDLM objective without time conditioning")
            m = (torch.floor(d.u[k] * n).long() + 1).clamp(max=n.clamp(min=1))
            rank = keys.masked_fill(~scored, 2.0).argsort(dim=-1, stable=True).argsort(dim=-1)
            masked = (rank < m[:, None]) & scored
            x_t = torch.where(masked, torch.full_like(x0, vocab.mask_id), x0)
            t = torch.ones(B, dtype=torch.float64, device=dev)
            out = objective.loss(x0, None, t, denoiser=denoiser, x_t=x_t)
            v = torch.where(n > 0, out.token_nll_sum.double() * n / m, torch.zeros((), dtype=torch.float64, device=dev))
        elif d.method in ("antithetic", "iid"):
            u = d.u[k].expand(B)
            if getattr(getattr(objective, "config", None), "time", "continuous") == "discrete" or \
                    type(objective).__name__ == "D3PMObjective":
                T = objective.config.num_timesteps
                t = (torch.floor(u * T).clamp(max=T - 1) + 1) / T
            else:
                t = u.clamp(min=torch.finfo(torch.float64).tiny)
            mask_prob = bound.schedule.mask_prob(t)
            masked = (keys < mask_prob[:, None]) & scored
            x_t = torch.where(masked, torch.full_like(x0, vocab.mask_id), x0)
            out = bound.loss(x0, None, t.to(torch.float32) if t.dtype != torch.float32 else t,
                             denoiser=denoiser, x_t=x_t)
            v = out.nelbo_per_seq.double()
            m0 = bound.schedule.ends()[0]
            if bound.continuous_time and m0 > 0:  # reconstruction at t = 0 on the coupled mask keys < m~(0)
                x_0 = torch.where((keys < m0) & scored, torch.full_like(x0, vocab.mask_id), x0)
                v = v + bound.reconstruction(x0, None, denoiser=denoiser, x_t=x_0)
        else:
            raise ValueError(f"unknown method {d.method!r} (num_masked | antithetic)")
        vals.append(check_finite(v, f"nelbo_with_draws (method={d.method}), draw {k + 1} of {d.K}").cpu())
    samples = torch.stack(vals, 1)
    return NELBOEstimate(*mean_and_stderr(samples), n.cpu(), samples)


def nelbo_on_batches(denoiser, objective, batches: Iterable[torch.Tensor], num_samples: int, method: str, seed: int,
                     progress: Callable[[int], object] | None = None) -> dict[str, float]:
    """Aggregate per-sequence NELBO estimates over batches (float64): nats/token, its standard error, bits.

    Batch ``i`` (LongTensor[B, L]) is estimated with ``num_samples`` draws from a generator seeded with
    ``seed * 1_000_003 + i``; ``progress(B)`` is called after each batch. The keys say ``per_base`` for DNA
    and text alike (a token is a base for DNA). The standard errors are NaN (unavailable) when an estimate
    has none (one draw); exact (AR) estimates have 0. ``likelihood``: ``"upper bound"`` (a NELBO, an upper
    bound in expectation on ``-log p_theta`` for every schedule) or ``"exact"`` (AR). A non-finite estimate
    raises :class:`~genodiff.errors.NonFiniteError` naming the batch."""
    total = torch.zeros((), dtype=torch.float64)
    variance = torch.zeros((), dtype=torch.float64)
    tokens = torch.zeros((), dtype=torch.float64)
    sequences = 0
    for index, x0 in enumerate(batches):
        generator = torch.Generator(device=x0.device).manual_seed(seed * 1_000_003 + index)
        try:
            est = estimate_nelbo(objective, denoiser, x0, None, num_samples, method, generator=generator)
        except NonFiniteError as exc:
            raise NonFiniteError(f"batch {index}: {exc}") from None
        total += est.nelbo.double().sum().cpu()
        variance += est.stderr.double().pow(2).sum().cpu()  # NaN (no standard error) propagates
        tokens += est.num_tokens.double().sum().cpu()
        sequences += x0.shape[0]
        if progress is not None:
            progress(x0.shape[0])
    nats = float(total / tokens.clamp(min=1))
    stderr = float(variance.sqrt() / tokens.clamp(min=1))
    return {"nats_per_base": nats, "nats_per_base_stderr": stderr, "bits_per_base": nats / LN2,
            "bits_per_base_stderr": stderr / LN2, "perplexity_bound": math.exp(nats), "tokens": int(tokens),
            "sequences": sequences,
            "likelihood": "exact" if isinstance(objective, ARObjective) else "upper bound"}
