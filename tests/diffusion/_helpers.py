"""Shared helpers for the diffusion tests (exhaustive expectations over masking patterns)."""

from __future__ import annotations

import numpy as np
import torch


def gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2), torch.tensor(w / 2)


def exact_expected_loss(objective, denoiser, world, t: float, x: torch.Tensor | None = None) -> torch.Tensor:
    """E_{z_t ~ q(.|x)}[objective integrand at time t] for every sequence x, by enumerating all
    2**L masking patterns. Returns FloatTensor[N] (float64)."""
    x = world.sequences if x is None else x
    pats = world.masked_patterns()  # [P, L]
    N, L = x.shape
    P = pats.shape[0]
    xx = x[:, None, :].expand(N, P, L).reshape(-1, L)
    mm = pats[None].expand(N, P, L).reshape(-1, L)
    xt = torch.where(mm, torch.full_like(xx, world.mask_id), xx)
    tt = torch.full((N * P,), t, dtype=torch.float64)
    out = objective.loss(xx, None, tt, denoiser=denoiser, x_t=xt)
    m = objective.schedule.mask_prob(torch.tensor(t, dtype=torch.float64))
    k = mm.sum(-1).double()
    prob = m ** k * (1 - m) ** (L - k)
    return (out.nelbo_per_seq.double() * prob).reshape(N, P).sum(-1)


def quadrature_nelbo(objective, denoiser, world, n: int = 32, x=None) -> torch.Tensor:
    nodes, weights = gauss_legendre(n)
    return sum(float(w) * exact_expected_loss(objective, denoiser, world, float(t), x) for t, w in zip(nodes, weights))


def exact_reconstruction(objective, denoiser, world, x=None) -> torch.Tensor:
    """E_{z_0 ~ q(z_0|x)}[sum over masked positions of -log p_theta(x^l | z_0)] at t = 0 (the reconstruction
    term of a schedule with alpha(0) < 1), by enumerating all 2**L masking patterns. FloatTensor[N]."""
    x = world.sequences if x is None else x
    pats = world.masked_patterns()
    N, L = x.shape
    P = pats.shape[0]
    xx = x[:, None, :].expand(N, P, L).reshape(-1, L)
    mm = pats[None].expand(N, P, L).reshape(-1, L)
    xt = torch.where(mm, torch.full_like(xx, world.mask_id), xx)
    out = objective.loss(xx, None, torch.zeros(N * P, dtype=torch.float64), denoiser=denoiser, x_t=xt)
    m = objective.schedule.mask_prob(torch.tensor(0.0, dtype=torch.float64))
    k = mm.sum(-1).double()
    prob = m ** k * (1 - m) ** (L - k)
    return (out.token_nll_sum.double() * prob).reshape(N, P).sum(-1)


def exact_bound(objective, denoiser, world, n: int = 32, x=None) -> torch.Tensor:
    """The continuous-time NELBO the estimators estimate: the objective's bound view (forward process conditioned
    on all-[MASK] at t = 1) integrated over [0, 1] plus the reconstruction term at t = 0."""
    bound = objective.bound_objective()
    return quadrature_nelbo(bound, denoiser, world, n, x) + exact_reconstruction(bound, denoiser, world, x)


def discrete_nelbo(objective, denoiser, world, x=None) -> torch.Tensor:
    """Exact T-step NELBO: sum over all steps i of E[L_i] (= mean over i of T * L_i)."""
    T = objective.config.num_timesteps
    return sum(exact_expected_loss(objective, denoiser, world, i / T, x) for i in range(1, T + 1)) / T


def random_denoiser(world, seed: int, scale: float = 1.0):
    """A deterministic, wrong, position- and context-dependent denoiser (float64 logits)."""
    g = torch.Generator().manual_seed(seed)
    table = scale * torch.randn((world.K + 1) ** world.L, world.L, world.K + 1, generator=g, dtype=torch.float64)

    def den(z, t=None):
        return table[world.state_index(z)]

    return den


def mixed_denoiser(world, seed: int, lam: float):
    """(1 - lam) * exact + lam * random, in probability space (still a valid model)."""
    rnd = random_denoiser(world, seed)

    def den(z, t=None):
        p = (1 - lam) * torch.softmax(world.denoiser(z)[..., : world.K], -1) + lam * torch.softmax(rnd(z)[..., : world.K], -1)
        out = torch.full(z.shape + (world.K + 1,), float("-inf"), dtype=torch.float64)
        out[..., : world.K] = torch.log(p)
        return out

    return den


def chi2_pvalue(samples_idx: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> float:
    """Pearson chi-square goodness-of-fit p-value of category indices vs probs (bins with expected
    count < min_expected are pooled)."""
    from scipy.stats import chi2

    n = samples_idx.numel()
    obs = torch.bincount(samples_idx, minlength=probs.numel()).double()
    exp = probs.double() * n
    small = exp < min_expected
    o = torch.cat([obs[~small], obs[small].sum().reshape(1)]) if small.any() else obs
    e = torch.cat([exp[~small], exp[small].sum().reshape(1)]) if small.any() else exp
    keep = e > 0
    o, e = o[keep], e[keep]
    stat = float(((o - e) ** 2 / e).sum())
    return float(chi2.sf(stat, df=len(e) - 1))
