"""Monte-Carlo NELBO estimator: unbiased (mean within 3 standard errors of the quadrature value)."""

import math

import pytest
import torch

from genodiff.diffusion.likelihood import estimate_nelbo, gauss_legendre_01
from genodiff.diffusion.objectives import ARObjective, D3PMObjective, MDLMObjective
from genodiff.diffusion.testing import TinyWorld

from _helpers import discrete_nelbo, quadrature_nelbo, random_denoiser


@pytest.fixture(scope="module")
def setup():
    # cosine: 1 - alpha_t = O(t^2), so the single-draw integrand has finite variance (log-linear's
    # 1/t weight gives a log-divergent variance; see the likelihood module docstring)
    world = TinyWorld.random(3, 3, seed=41)
    den = random_denoiser(world, 2)
    obj = MDLMObjective(vocab=world.vocab, schedule={"name": "cosine", "eps": 0.0}, sampling_eps=0.0)
    exact = quadrature_nelbo(obj, den, world, n=48)
    return world, den, obj, exact


@pytest.mark.parametrize("method", ["antithetic", "iid", "quadrature", "num_masked"])
def test_estimator_unbiased(setup, method):
    world, den, obj, exact = setup
    x = world.sequences.repeat(20, 1)  # 540 rows, 20 independent estimates per sequence
    est = estimate_nelbo(obj, den, x, num_samples=64, method=method, generator=torch.Generator().manual_seed(1))
    assert est.nelbo.shape == (540,) and est.stderr.shape == (540,) and (est.stderr > 0).all()
    ex = exact.repeat(20)
    z = (est.nelbo - ex) / est.stderr
    pooled = float((est.nelbo - ex).sum() / est.stderr.pow(2).sum().sqrt())
    assert abs(pooled) < 3.0
    # stderr is calibrated: the spread of the z-scores is about 1 (conservative for stratified draws)
    assert 0.2 < float(z.std()) < 1.3


def test_num_masked_is_schedule_free_and_loglinear_unbiased():
    world = TinyWorld.random(3, 3, seed=43)
    den = random_denoiser(world, 5)
    obj = MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, sampling_eps=0.0)
    exact = quadrature_nelbo(obj, den, world, n=8)
    x = world.sequences.repeat(20, 1)
    for method in ("num_masked", "antithetic"):
        est = estimate_nelbo(obj, den, x, num_samples=64, method=method, generator=torch.Generator().manual_seed(6))
        pooled = float((est.nelbo - exact.repeat(20)).sum() / est.stderr.pow(2).sum().sqrt())
        assert abs(pooled) < 3.0
    # power check: a 10% bias in the per-draw values fails the same pooled check
    est = estimate_nelbo(obj, den, x, num_samples=64, method="num_masked", generator=torch.Generator().manual_seed(6))
    k_bias = est.samples * 0.9
    assert abs(float((k_bias.mean(1) - exact.repeat(20)).sum() / est.stderr.pow(2).sum().sqrt())) > 10


def test_stratified_and_num_masked_have_lower_variance(setup):
    world, den, obj, exact = setup
    x = world.sequences.repeat(40, 1)
    err = {}
    for m in ("antithetic", "iid", "num_masked"):
        est = estimate_nelbo(obj, den, x, num_samples=16, method=m, generator=torch.Generator().manual_seed(2))
        err[m] = float((est.nelbo - exact.repeat(40)).pow(2).mean())
    assert err["antithetic"] < err["iid"] and err["num_masked"] < err["iid"]


def test_exact_denoiser_bits_and_perplexity():
    world = TinyWorld.random(3, 3, seed=42)
    obj = MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, sampling_eps=0.0)
    x = world.sequences
    est = estimate_nelbo(obj, world.denoiser, x, num_samples=200, generator=torch.Generator().manual_seed(3))
    true = float(-torch.log(world.probs).sum() / x.numel())
    assert abs(est.nats_per_token - true) < 4 * est.nats_per_token_stderr
    assert math.isclose(est.bits_per_token, est.nats_per_token / math.log(2))
    assert math.isclose(est.perplexity_bound, math.exp(est.nats_per_token))
    ar = estimate_nelbo(ARObjective(vocab=world.vocab), world.ar_denoiser, x)
    torch.testing.assert_close(ar.nelbo, -torch.log(world.probs))
    assert (ar.stderr == 0).all()


def test_discrete_objectives(setup):
    world, den, _, _ = setup
    for obj in (MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, time="discrete", num_timesteps=8),
                D3PMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, num_timesteps=8)):
        exact = discrete_nelbo(obj, den, world)
        x = world.sequences.repeat(20, 1)
        est = estimate_nelbo(obj, den, x, num_samples=32, generator=torch.Generator().manual_seed(4))
        pooled = float((est.nelbo - exact.repeat(20)).sum() / est.stderr.pow(2).sum().sqrt())
        assert abs(pooled) < 3.0
        with pytest.raises(ValueError):
            estimate_nelbo(obj, den, x, method="quadrature")


def test_gauss_legendre():
    n, w = gauss_legendre_01(5)
    assert abs(float(w.sum()) - 1) < 1e-14 and abs(float((w * n**9).sum()) - 0.1) < 1e-14


@pytest.mark.parametrize("schedule", [{"name": "loglinear", "eps": 0.2}, {"name": "linear", "sigma_max": 1.5},
                                      {"name": "geometric", "sigma_min": 0.3, "sigma_max": 20.0}],
                         ids=["loglinear_eps", "linear_short", "geometric_wide"])
@pytest.mark.parametrize("method", ["antithetic", "quadrature"])
def test_estimators_target_the_bound_when_alpha_ends_are_not_0_and_1(schedule, method):
    """With alpha(1) > 0 or alpha(0) < 1 the estimate is unbiased for the bound of the model the samplers
    sample (conditioned on all-[MASK] at t = 1, plus the reconstruction at t = 0), never for the lower
    plain integral; for the exact denoiser and alpha(0) = 1 that bound is -log p(x) itself."""
    from _helpers import exact_bound

    world = TinyWorld.random(3, 3, seed=44)
    obj = MDLMObjective(vocab=world.vocab, schedule=schedule, sampling_eps=0.0, time_conditioning=True)
    n = 128 if schedule["name"] == "geometric" else 64
    target = exact_bound(obj, world.denoiser, world, n=n)
    plain = quadrature_nelbo(obj, world.denoiser, world, n=n)
    x = world.sequences.repeat(20, 1)
    est = estimate_nelbo(obj, world.denoiser, x, num_samples=64, method=method,
                         generator=torch.Generator().manual_seed(8))
    se = est.stderr.pow(2).sum().sqrt()
    pooled = float((est.nelbo - target.repeat(20)).sum() / se)
    assert abs(pooled) < 3.0, pooled
    # negative control: the same estimates are far from the plain integral (the number reported before)
    assert float((est.nelbo - plain.repeat(20)).sum() / se) > 6
    if schedule["name"] != "geometric":
        torch.testing.assert_close(target, -torch.log(world.probs), atol=1e-6, rtol=0)
