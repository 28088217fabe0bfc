"""Plaid (genodiff.diffusion.plaid): the VDM bound's terms against closed forms, the bound against -log p on
exhaustive tiny worlds with the exact posterior-mean denoiser, the estimators' means, the sampler's law, and
exact reverse-complement equivariance on Caduceus-PS. Every check has a negative control showing it can fail.

The exact denoiser of a tiny world (:class:`GaussianWorld`) enumerates the ``K**L`` sequences:
``p(x | z_t) ~ p(x) prod_l N(z_l; alpha_t E[x_l], sigma_t^2 I)``. Expectations over ``z_t`` are Gauss-Hermite
sums over the noise and Gauss-Legendre sums over t. With two tokens at antipodal embeddings ``(+-1, 0)`` every
quantity depends on the noise only through its first coordinate per position, so the noise integral is
L-dimensional (the other coordinate is set to 0 exactly, not approximated).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genodiff.data.genome import vocab as dna
from genodiff.diffusion.build import build_objective
from genodiff.diffusion.likelihood import estimate_nelbo
from genodiff.diffusion.plaid import PlaidObjective, gaussian_prior_kl, plaid_sample
from genodiff.diffusion.testing import TinyWorld
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError, NonFiniteError
from genodiff.models.rcps import rc_hidden

from _helpers import chi2_pvalue


# ------------------------------------------------------------------------------------------- helpers
def gauss_hermite(n: int, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (n**dims, dims) and weights (summing to 1) for E over N(0, I_dims)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    nodes = np.stack(np.meshgrid(*[x] * dims, indexing="ij"), -1).reshape(-1, dims)
    weights = np.prod(np.stack(np.meshgrid(*[w] * dims, indexing="ij"), -1).reshape(-1, dims), -1)
    return torch.tensor(nodes), torch.tensor(weights)


def gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2), torch.tensor(w / 2)


def tiny_objective(vocab, seed: int = 0, **kw) -> PlaidObjective:
    """A float64 Plaid objective for exact checks: D = 2, no self-conditioning, reconstruction drawn apart; its
    embeddings are drawn from the global generator, seeded here so every run checks the same world."""
    args = dict(embed_dim=2, time_features=2, self_conditioning=False, reconstruction_fraction=0.0)
    torch.manual_seed(seed)
    return PlaidObjective(vocab=vocab, **{**args, **kw}).double()


def antipodal(obj: PlaidObjective) -> PlaidObjective:
    with torch.no_grad():
        obj.embedding.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=obj.embedding.dtype))
    return obj


class GaussianWorld:
    """The exact posterior-mean denoiser of a :class:`TinyWorld` under ``obj``'s forward process (module
    docstring); ``probs`` (optional) makes it the exact denoiser of another distribution (a wrong model)."""

    def __init__(self, world: TinyWorld, obj: PlaidObjective, probs: torch.Tensor | None = None):
        self.world, self.obj = world, obj
        self.log_prior = torch.log(world.probs if probs is None else probs)
        self.onehot = torch.nn.functional.one_hot(world.sequences, world.K).double()

    def gaussian_loglik(self, z, gamma):
        """log N(z_l; alpha E[v], sigma^2 I) up to a v-independent constant: (B, L, K)."""
        E = self.obj.embeddings().detach()
        a2, s2 = torch.sigmoid(-gamma)[:, None, None], torch.sigmoid(gamma)[:, None, None]
        return (a2.sqrt() * (z @ E.T) - 0.5 * a2 * E.pow(2).sum(-1)) / s2

    def log_marginals(self, z, gamma):
        seqs = self.world.sequences
        L, K = seqs.shape[1], self.world.K
        lt = self.gaussian_loglik(z, gamma)
        ll = lt[:, torch.arange(L)[None, :], seqs].sum(-1)  # (B, N)
        post = torch.softmax(self.log_prior[None] + ll, -1)
        return torch.log((post @ self.onehot.reshape(len(seqs), -1)).reshape(-1, L, K)), lt

    def denoiser(self, v, t):
        gamma = self.obj.gamma(t.double())[0].detach()
        z, _ = self.obj.split_inputs(v.double(), gamma)
        marg, lt = self.log_marginals(z, gamma)
        raw = marg - lt if self.obj.config.output_bias else marg  # the objective adds lt back
        out = torch.zeros(v.shape[0], v.shape[1], self.world.K + 1, dtype=torch.float64)
        out[..., : self.world.K] = raw
        return out


@torch.no_grad()
def exact_terms(obj, den, x, n_t: int, n_gh: int, axis_only: bool = True) -> torch.Tensor:
    """(N, 3): prior, E[reconstruction], diffusion integral of each sequence of ``x`` (N, L), by quadrature."""
    N, L = x.shape
    D = obj.config.embed_dim
    nodes, w = gauss_hermite(n_gh, L if axis_only else L * D)
    P = nodes.shape[0]
    if axis_only:
        eps = torch.zeros(P, L, D, dtype=torch.float64)
        eps[..., 0] = nodes
    else:
        eps = nodes.reshape(P, L, D)
    xr = x[:, None, :].expand(N, P, L).reshape(-1, L)
    eps = eps[None].expand(N, P, L, D).reshape(-1, L, D)
    e = obj.token_embeddings(xr, torch.ones_like(xr, dtype=torch.bool))
    prior = obj.prior(x).double()

    def z_at(t):
        g = obj.gamma(t)[0]
        return torch.sigmoid(-g).sqrt()[:, None, None] * e + torch.sigmoid(g).sqrt()[:, None, None] * eps

    z0 = z_at(torch.zeros(N * P, dtype=torch.float64))
    recon = (obj.reconstruction(xr, x_t=z0, denoiser=den).reshape(N, P) * w).sum(-1)
    diffusion = torch.zeros(N, dtype=torch.float64)
    t_nodes, t_weights = gauss_legendre(n_t)
    for tj, wj in zip(t_nodes, t_weights):
        t = torch.full((N * P,), float(tj), dtype=torch.float64)
        out = obj.loss(xr, None, t, x_t=z_at(t), denoiser=den)
        diffusion += wj * ((out.nelbo_per_seq.double().reshape(N, P) - prior[:, None]) * w).sum(-1)
    return torch.stack([prior, recon, diffusion], 1)


# ------------------------------------------------------------------------------- (a) closed forms
@pytest.mark.parametrize("B,L,D,seed", [(1, 1, 2, 0), (2, 5, 4, 1), (3, 9, 16, 2)])
def test_prior_kl_matches_closed_form(B, L, D, seed):
    """Prior KL(N(alpha_1 e, sigma_1^2 I) || N(0, I)) per sequence vs numpy by hand and torch.distributions."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    obj = PlaidObjective(embed_dim=D, gamma_1=float(torch.empty(()).uniform_(-2, 8, generator=g))).double()
    ids = torch.tensor(list(dna.DNA_IDS) + [dna.N_ID, dna.PAD_ID])
    x0 = ids[torch.randint(len(ids), (B, L), generator=g)]
    got = obj.prior(x0)
    E = obj.embeddings().detach().numpy()
    g1 = float(obj.gamma_bounds[1].detach())
    a2, s2 = 1 / (1 + np.exp(g1)), 1 / (1 + np.exp(-g1))
    want = np.zeros(B)
    for b in range(B):
        for l in range(L):
            if int(x0[b, l]) in dna.DNA_IDS:
                mu = math.sqrt(a2) * E[dna.DNA_IDS.index(int(x0[b, l]))]
                want[b] += 0.5 * np.sum(mu ** 2 + s2 - 1 - np.log(s2))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    e = torch.tensor(E[0], dtype=torch.float64)
    q = torch.distributions.Normal(math.sqrt(a2) * e, math.sqrt(s2))
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(gaussian_prior_kl(e, torch.tensor(g1, dtype=torch.float64)), ref, rtol=1e-12, atol=1e-14)
    wrong = 0.5 * (a2 * np.sum(E[0] ** 2) + D * (s2 - 1 + np.log(s2)))  # negative control: sign of log
    assert abs(float(ref) - wrong) > 1e-3


def _random_network(B, L, V, seed):
    table = torch.randn(B, L, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lambda v, t: table


def _by_hand_posterior(R, z, E, a2, s2):
    """softmax_v(R_v + log N(z; alpha E_v, sigma^2 I)) with scipy's Gaussian log-density (float64 numpy)."""
    D = E.shape[1]
    logn = np.array([multivariate_normal(mean=math.sqrt(a2) * E[v], cov=s2 * np.eye(D)).logpdf(z)
                     for v in range(E.shape[0])])
    lg = R + logn
    lg = lg - lg.max()
    return np.exp(lg) / np.exp(lg).sum()


@pytest.mark.parametrize("shape,time,seed", [("linear", "continuous", 0), ("cosine", "continuous", 1),
                                             ("linear", "discrete", 2)])
@pytest.mark.parametrize("B,L,D", [(2, 3, 2), (3, 4, 6)])
def test_loss_integrand_matches_closed_form(shape, time, seed, B, L, D):
    """loss() at given (t, z_t) = w(t) ||e - x_hat||^2 + prior per position, with x_hat the mean of
    softmax(network + log N(z; alpha E, sigma^2)) over E, all recomputed by hand in numpy/scipy."""
    K = 3
    vocab = DiffusionVocab.generic(K)
    obj = tiny_objective(vocab, embed_dim=D, shape=shape, time=time, num_timesteps=7, gamma_0=-2.5, gamma_1=4.0)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(K, (B, L), generator=g)
    T = 7
    t = torch.randint(1, T + 1, (B,), generator=g).double() / T if time == "discrete" else \
        torch.rand(B, generator=g, dtype=torch.float64)
    z = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    den = _random_network(B, L, K + 1, seed)
    out = obj.loss(x0, None, t, x_t=z, denoiser=den)
    E = obj.embeddings().detach().numpy()
    g0, g1 = -2.5, 4.0
    R = den(None, None).numpy()
    want, half = np.zeros((B, L)), np.zeros((B, L))
    for b in range(B):
        tb = float(t[b])
        s = tb if shape == "linear" else 0.5 * (1 - math.cos(math.pi * tb))
        gam = g0 + (g1 - g0) * s
        if time == "discrete":
            ts = tb - 1 / T
            ss = ts  # linear
            w = 0.5 * T * (math.exp(-(g0 + (g1 - g0) * ss)) - math.exp(-gam))
        else:
            ds = 1.0 if shape == "linear" else 0.5 * math.pi * math.sin(math.pi * tb)
            w = 0.5 * (g1 - g0) * ds * math.exp(-gam)
        a2, s2 = 1 / (1 + math.exp(gam)), 1 / (1 + math.exp(-gam))
        a2_1, s2_1 = 1 / (1 + math.exp(g1)), 1 / (1 + math.exp(-g1))
        for l in range(L):
            p = _by_hand_posterior(R[b, l, :K], z[b, l].numpy(), E, a2, s2)
            e = E[int(x0[b, l])]
            mse = np.sum((e - p @ E) ** 2)
            kl = 0.5 * np.sum(a2_1 * e ** 2 + s2_1 - 1 - np.log(s2_1))
            want[b, l], half[b, l] = w * mse + kl, 0.5 * w * mse + kl
    got = out.per_token.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.abs(got - half).max() > 1e-3  # control: a halved diffusion weight is caught


@pytest.mark.parametrize("B,L,D,seed", [(2, 3, 2, 0), (4, 5, 8, 1)])
def test_reconstruction_matches_closed_form(B, L, D, seed):
    """-log p(x | z_0) = -sum_l log softmax(network + log N(z_0; alpha_0 E, sigma_0^2))[x_l] (scipy by hand); with
    a zero network it is the exact posterior of a uniform token (VDM's decoder)."""
    K = 4
    vocab = DiffusionVocab.generic(K)
    obj = tiny_objective(vocab, embed_dim=D, gamma_0=-1.5)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(K, (B, L), generator=g)
    z0 = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    E = obj.embeddings().detach().numpy()
    a2, s2 = 1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(1.5))
    for den, R in ((_random_network(B, L, K + 1, seed), None), (lambda v, t: torch.zeros(B, L, K + 1, dtype=torch.float64), 0.0)):
        got = obj.reconstruction(x0, x_t=z0, denoiser=den).detach()
        Rn = den(None, None).double().numpy()
        want = np.zeros(B)
        for b in range(B):
            for l in range(L):
                want[b] -= math.log(_by_hand_posterior(Rn[b, l, :K], z0[b, l].numpy(), E, a2, s2)[int(x0[b, l])])
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
        assert np.all(np.abs(got.numpy() - 0.5 * want) > 1e-6)  # control: a halved term is caught


def test_reconstruction_fraction_folds_reconstruction_into_loss():
    """With reconstruction_fraction p > 0, loss() has no separate reconstruction() and its mean over the row
    draws is prior + recon + diffusion (here a t-independent check: z_0 rows at t = 0)."""
    obj = PlaidObjective(vocab=DiffusionVocab.generic(3), embed_dim=2, time_features=2, self_conditioning=False,
                         reconstruction_fraction=0.5).double()
    x0 = torch.randint(3, (2, 4))
    assert torch.equal(obj.reconstruction(x0, denoiser=_random_network(2, 4, 4, 0)), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="reconstruction_fraction"):
        obj.loss(x0, None, torch.rand(2), x_t=torch.zeros(2, 4, 2), denoiser=_random_network(2, 4, 4, 0))


# ----------------------------------------------------------------- (b) the diffusion term's expectation
@pytest.mark.parametrize("shape,time", [("linear", "continuous"), ("cosine", "continuous"), ("linear", "discrete")])
def test_diffusion_term_constant_prediction_closed_form(shape, time):
    """A network with constant logits and no output bias predicts a constant x_hat, so ||e - x_hat||^2 = C is
    constant in t and the noise, and E_t[diffusion] = 1/2 (SNR(0) - SNR(1)) C for every shape, in continuous
    time and (telescoping) for T steps. Checked exactly (quadrature / all T steps) and for the sampled times (mean
    of the stratified training draws, z-test), each with a negative control."""
    K, L, T = 3, 4, 16
    obj = tiny_objective(DiffusionVocab.generic(K), embed_dim=4, shape=shape, time=time, num_timesteps=T,
                         output_bias=False, gamma_0=-2.0, gamma_1=3.0)
    g = torch.Generator().manual_seed(3)
    R = torch.randn(L, K + 1, generator=g, dtype=torch.float64)
    den = lambda v, t: R.expand(v.shape[0], L, K + 1)  # noqa: E731
    x0 = torch.randint(K, (1, L), generator=g)
    E = obj.embeddings().detach()
    xhat = torch.softmax(R[:, :K], -1) @ E
    C = float((E[x0[0]] - xhat).pow(2).sum())
    exact = 0.5 * (math.exp(2.0) - math.exp(-3.0)) * C
    prior = float(obj.prior(x0).detach())
    if time == "discrete":
        ts = torch.arange(1, T + 1, dtype=torch.float64) / T
        vals = obj.loss(x0.expand(T, L), None, ts, x_t=torch.zeros(T, L, 4, dtype=torch.float64), denoiser=den)
        quad = float(vals.nelbo_per_seq.detach().mean()) - prior
    else:
        nodes, weights = gauss_legendre(64)
        vals = obj.loss(x0.expand(64, L), None, nodes, x_t=torch.zeros(64, L, 4, dtype=torch.float64), denoiser=den)
        quad = float((vals.nelbo_per_seq.detach() * weights).sum()) - prior
    assert abs(quad - exact) < 1e-9 * exact
    assert abs(quad - 2 * exact) > 0.1 * exact  # control: VDM's factor 1/2 matters
    # sampled times: the objective's own t draws (stratified), the noise draws are irrelevant here
    draws = torch.cat([obj.loss(x0.expand(256, L), generator=torch.Generator().manual_seed(k), denoiser=den)
                       .nelbo_per_seq.detach() for k in range(8)]) - prior
    mean, se = float(draws.mean()), float(draws.std() / math.sqrt(len(draws)))
    assert abs(mean - exact) < 4 * se + 1e-12
    assert abs(mean - 0.5 * (1.0 - math.exp(-3.0)) * C) > 6 * se  # control: SNR(0) = exp(-gamma_0), not 1


def test_continuous_bound_depends_on_the_schedule_only_through_its_endpoints():
    """VDM's invariance: linear and cosine shapes with the same endpoints give the same diffusion integral for the
    exact denoiser (a non-trivial x_hat); moving an endpoint changes it (control)."""
    world = TinyWorld.random(2, 2, seed=1)
    vals = []
    for shape, g1 in (("linear", 2.0), ("cosine", 2.0), ("linear", 3.0)):
        obj = antipodal(tiny_objective(world.vocab, shape=shape, gamma_0=-1.0, gamma_1=g1))
        vals.append(exact_terms(obj, GaussianWorld(world, obj).denoiser, world.sequences, 48, 20)[:, 2])
    torch.testing.assert_close(vals[0], vals[1], atol=1e-7, rtol=0)
    assert float((vals[0] - vals[2]).abs().min()) > 1e-2


# ------------------------------------------------------------------------ (c) the bound on a tiny world
def test_bound_is_tight_for_the_exact_denoiser_with_wide_endpoints():
    """I-MMSE (Guo et al. 2005; Kong et al. 2023): with the exact posterior mean, the diffusion integral from
    SNR ~ 0 to SNR ~ inf is -log p(x) pointwise, and the prior and reconstruction terms vanish. So on every
    sequence of the world, prior + recon + diffusion >= -log p(x) and ~= it (quadrature error < 5e-3 nats).
    Controls: a halved diffusion weight or a dropped term falls below -log p(x) and is caught."""
    world = TinyWorld.random(2, 2, seed=1)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-10.0, gamma_1=10.0))
    terms = exact_terms(obj, GaussianWorld(world, obj).denoiser, world.sequences, 48, 48)
    nll = -torch.log(world.probs)
    bound = terms.sum(1)
    assert float((bound - nll).min()) > -5e-3
    assert float((bound - nll).abs().max()) < 5e-3
    assert float((terms[:, 0] + terms[:, 1] + 0.5 * terms[:, 2] - nll).max()) < -0.1  # wrong factor: caught
    assert float((terms[:, 0] + terms[:, 1] - nll).max()) < -0.1  # missing diffusion term: caught


@pytest.mark.parametrize("wrong", [None, 7])
def test_bound_sums_to_at_most_one_for_any_denoiser(wrong):
    """For every denoiser theta, NELBO_theta(x) >= -log p_theta(x), so sum_x exp(-NELBO_theta(x)) <= 1 over the
    whole world (a theorem at any endpoints; pointwise NELBO >= -log p_data is not, and fails here by > 0.5 nats
    for moderate endpoints). Moderate endpoints make every term count: dropping the reconstruction or the prior
    term, or halving the diffusion weight, pushes the sum above 1 (controls)."""
    world = TinyWorld.random(2, 2, seed=1)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-1.0, gamma_1=2.0))
    probs = None if wrong is None else TinyWorld.random(2, 2, seed=wrong).probs
    terms = exact_terms(obj, GaussianWorld(world, obj, probs).denoiser, world.sequences, 24, 20)
    prior, recon, diffusion = terms.unbind(1)
    total = float(torch.exp(-(prior + recon + diffusion)).sum())
    assert 0.9 < total <= 1.0
    for bad in (prior + diffusion, recon + diffusion, prior + recon + 0.5 * diffusion):
        assert float(torch.exp(-bad).sum()) > 1.05


@pytest.mark.slow
@pytest.mark.parametrize("K,L,seed", [(2, 3, 2)])
def test_bound_is_tight_on_a_longer_world(K, L, seed):
    world = TinyWorld.random(K, L, seed=seed)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-10.0, gamma_1=10.0))
    terms = exact_terms(obj, GaussianWorld(world, obj).denoiser, world.sequences, 48, 32)
    nll = -torch.log(world.probs)
    assert float((terms.sum(1) - nll).abs().max()) < 1e-2


# -------------------------------------------------------------------------------- the estimators' means
def test_estimate_nelbo_is_unbiased_for_the_quadrature_bound():
    """estimate_nelbo (antithetic t, one noise draw each, plus a reconstruction draw) averages to the exact bound
    (z-test per sequence); the exact bound without its reconstruction term is rejected (control)."""
    world = TinyWorld.random(2, 2, seed=1)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-1.0, gamma_1=2.0))
    den = GaussianWorld(world, obj).denoiser
    exact = exact_terms(obj, den, world.sequences, 24, 20)
    x = world.sequences.repeat(64, 1)
    est = estimate_nelbo(obj, den, x, num_samples=16, generator=torch.Generator().manual_seed(0))
    mean = est.nelbo.reshape(64, -1).mean(0)
    se = est.nelbo.reshape(64, -1).std(0) / 8.0
    z = (mean - exact.sum(1)) / se
    assert float(z.abs().max()) < 4.0
    z_bad = (mean - exact[:, 0] - exact[:, 2]) / se
    assert float(z_bad.abs().max()) > 6.0


def test_training_loss_is_unbiased_with_reconstruction_rows_and_self_conditioning():
    """The training estimator (reconstruction rows with probability p, rescaled, self-conditioning on a random
    quarter of the calls) has the bound's mean: the exact denoiser ignores x_sc, so both passes are the same
    model. Control: the same draws against the bound without reconstruction."""
    world = TinyWorld.random(2, 2, seed=1)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-1.0, gamma_1=2.0))
    den = GaussianWorld(world, obj).denoiser
    exact = exact_terms(obj, den, world.sequences, 24, 20)
    train = antipodal(tiny_objective(world.vocab, gamma_0=-1.0, gamma_1=2.0, reconstruction_fraction=0.3,
                                     self_conditioning=True, self_conditioning_prob=0.25))
    x = world.sequences.repeat(512, 1)
    vals = torch.stack([train.loss(x, generator=torch.Generator().manual_seed(k), denoiser=den).nelbo_per_seq
                        for k in range(8)]).reshape(8, 512, -1).reshape(-1, world.sequences.shape[0])
    mean, se = vals.mean(0), vals.std(0) / math.sqrt(vals.shape[0])
    assert float(((mean - exact.sum(1)) / se).abs().max()) < 4.0
    assert float(((mean - exact[:, 0] - exact[:, 2]) / se).abs().max()) > 6.0


# ----------------------------------------------------------------------------------------- (d) sampler
def _sample_counts(obj, den, world, n, steps, seed):
    out = plaid_sample(den, world.vocab, n, world.L, objective=obj, num_steps=steps,
                       generator=torch.Generator().manual_seed(seed))
    return world.seq_index(out.tokens), out


def test_sampler_draws_from_the_data_law_with_the_exact_denoiser():
    """The ancestral sampler with the exact posterior mean of a distribution concentrated on a few sequences
    (endpoints -7 and 7, 128 steps) reproduces it (chi-square); the same samples against a perturbed law, and samples
    from the perturbed law's denoiser against the true one, are rejected (controls: the test has power)."""
    world = TinyWorld(torch.tensor([0.4, 0.0, 0.25, 0.05, 0.0, 0.2, 0.1, 0.0, 0.0]), 3, 2)
    other = TinyWorld(torch.tensor([0.1, 0.0, 0.25, 0.05, 0.0, 0.2, 0.4, 0.0, 0.0]), 3, 2)
    obj = tiny_objective(world.vocab, gamma_0=-7.0, gamma_1=7.0)
    idx, out = _sample_counts(obj, GaussianWorld(world, obj).denoiser, world, 3000, 128, 0)
    assert out.num_denoiser_calls == 129 and out.tokens.shape == (3000, 2)
    assert float(world.probs[idx].min()) > 0  # no impossible sequence (chi2_pvalue drops empty bins)
    assert chi2_pvalue(idx, world.probs) > 1e-3
    assert chi2_pvalue(idx, other.probs) < 1e-6
    idx_other, _ = _sample_counts(obj, GaussianWorld(other, obj).denoiser, world, 1000, 128, 1)
    assert chi2_pvalue(idx_other, world.probs) < 1e-6


def test_sampler_self_conditioning_calls_and_known_positions():
    """Self-conditioning costs two calls per evaluation; known positions are returned unchanged and steer the
    rest (here the world has x_1 = x_0, so a known x_0 fixes x_1). Replacement is an approximate conditional: a
    few percent of the rows commit to the other token before the known base is clear enough (5% here), hence 0.9."""
    world = TinyWorld(torch.tensor([0.5, 1e-9, 1e-9, 0.5]), 2, 2)
    obj = antipodal(tiny_objective(world.vocab, gamma_0=-9.0, gamma_1=9.0, self_conditioning=True))
    den = GaussianWorld(world, obj).denoiser
    x_init = torch.tensor([[1, world.mask_id]] * 200)
    out = plaid_sample(den, world.vocab, x_init=x_init, objective=obj, num_steps=64,
                       generator=torch.Generator().manual_seed(0))
    assert out.num_denoiser_calls == 2 * 65
    assert torch.equal(out.tokens[:, 0], x_init[:, 0])
    assert float((out.tokens[:, 1] == 1).double().mean()) > 0.9
    free = plaid_sample(den, world.vocab, 200, 2, objective=obj, num_steps=64,
                        generator=torch.Generator().manual_seed(0))
    assert 0.3 < float((free.tokens[:, 1] == 1).double().mean()) < 0.7  # control: unconditioned, half and half


def test_sampler_and_estimator_refuse_non_finite_denoisers():
    world = TinyWorld.random(2, 2, seed=0)
    obj = tiny_objective(world.vocab)
    bad = lambda v, t: torch.full((v.shape[0], v.shape[1], 3), float("nan"), dtype=torch.float64)  # noqa: E731
    with pytest.raises(NonFiniteError, match="plaid sampler"):
        plaid_sample(bad, world.vocab, 2, 2, objective=obj, num_steps=4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteError, match="estimate_nelbo"):
        estimate_nelbo(obj, bad, world.sequences, num_samples=2)


# ------------------------------------------------------------------------- RC equivariance (Caduceus-PS)
@pytest.mark.parametrize("rc_symmetric", [None, False])
def test_caduceus_ps_plaid_denoiser_is_rc_equivariant(rc_symmetric):
    """With E[comp(a)] = flip(E[a]) (the DNA default) the Plaid loss of rc(x) under the mirrored noise equals that
    of x (self-conditioned, float32 on a random Caduceus-PS); without the symmetry (control) it does not."""
    from genodiff.models.registry import build_model

    torch.manual_seed(0)
    obj = PlaidObjective(embed_dim=8, time_features=4, rc_symmetric=rc_symmetric, reconstruction_fraction=0.0,
                         self_conditioning_prob=1.0)
    assert obj.rc_symmetric is (rc_symmetric is None)
    model = build_model("caduceus", d_model=16, n_layer=2, rcps=True, input_dim=obj.input_dim)
    den = lambda v, t: model(v, time=t)[..., :12]  # noqa: E731
    g = torch.Generator().manual_seed(1)
    x = torch.tensor(dna.DNA_IDS)[torch.randint(4, (3, 20), generator=g)]
    x[0, 5] = dna.N_ID
    rc = torch.as_tensor(list(dna.COMPLEMENT_MAP))[x.flip(-1)]
    t = torch.rand(3, generator=g)
    z = torch.randn(3, 20, 8, generator=g)
    with torch.no_grad():
        a = obj.loss(x, None, t, x_t=z * (x != dna.N_ID)[..., None], denoiser=den).nelbo_per_seq
        zr = rc_hidden(z) * (rc != dna.N_ID)[..., None]
        b = obj.loss(rc, None, t, x_t=zr, denoiser=den).nelbo_per_seq
    if rc_symmetric is None:
        E = obj.embeddings()
        torch.testing.assert_close(E[obj.comp_rows], E.flip(-1))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    else:
        assert float((a - b).abs().max()) > 1e-3


# --------------------------------------------------------------------------------------- wiring, errors
def test_build_objective_and_bound_view():
    obj = build_objective({"name": "plaid", "embed_dim": 4, "time_features": 2}, DiffusionVocab.dna())
    assert isinstance(obj, PlaidObjective) and obj.input_dim == 16 and obj.rc_symmetric
    assert {n for n, _ in obj.named_parameters()} == {"embedding", "gamma_bounds"}
    view = obj.bound_objective()
    assert view.config.reconstruction_fraction == 0.0 and view.config.self_conditioning_prob == 1.0
    assert view.embedding is obj.embedding and obj.config.reconstruction_fraction == 0.125
    with pytest.raises(InputError, match="embed_dim"):
        build_objective({"name": "plaid", "embed_dim": 3}, DiffusionVocab.dna())
    with pytest.raises(InputError, match="rc_symmetric"):
        build_objective({"name": "plaid", "rc_symmetric": True}, DiffusionVocab.generic(5))
    with pytest.raises(InputError, match="gamma_0 < gamma_1"):
        build_objective({"name": "plaid", "gamma_0": 2.0, "gamma_1": 1.0}, DiffusionVocab.dna())


def test_model_inputs_round_trip_and_palindromic_layout():
    """split_inputs inverts model_inputs; flipping the inputs' channels is the same as flipping z and x_sc (the
    layout Caduceus-PS needs for RC equivariance); a plain concatenation would not be (control)."""
    obj = PlaidObjective(embed_dim=6, time_features=3).double()
    g = torch.Generator().manual_seed(0)
    z, xs = torch.randn(2, 5, 6, generator=g, dtype=torch.float64), torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    gamma = torch.tensor([-2.0, 3.5], dtype=torch.float64)
    v = obj.model_inputs(z, xs, gamma)
    assert v.shape == (2, 5, obj.input_dim)
    z2, xs2 = obj.split_inputs(v, gamma)
    torch.testing.assert_close(z2, z)
    torch.testing.assert_close(xs2, xs)
    torch.testing.assert_close(v.flip(-1), obj.model_inputs(z.flip(-1), xs.flip(-1), gamma))
    concat = torch.cat([z, xs], -1)
    assert not torch.allclose(concat.flip(-1), torch.cat([z.flip(-1), xs.flip(-1)], -1))


def test_learned_parameters_get_gradients():
    torch.manual_seed(0)
    obj = PlaidObjective(embed_dim=4, time_features=2)
    from genodiff.models.registry import build_model

    model = build_model("dit", hidden_size=32, n_blocks=1, n_heads=2, cond_dim=8, input_dim=obj.input_dim)
    x = torch.tensor(dna.DNA_IDS)[torch.randint(4, (4, 16))]
    out = obj.loss(x, denoiser=lambda v, t: model(v, time=t)[..., :12], generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and float(obj.embedding.grad.abs().sum()) > 0
    assert float(obj.gamma_bounds.grad.abs().sum()) > 0
    frozen = PlaidObjective(embed_dim=4, time_features=2, learn_endpoints=False)
    assert not frozen.gamma_bounds.requires_grad
