"""Exhaustive tiny-world checks: the continuous NELBO with the exact denoiser equals -log p(x)."""

import pytest
import torch

from genodiff.diffusion.objectives import ARObjective, D3PMObjective, MDLMObjective, SEDDObjective
from genodiff.diffusion.testing import TinyWorld

from _helpers import discrete_nelbo, exact_bound, quadrature_nelbo, random_denoiser

WORLDS = [(2, 2, 0), (2, 4, 1), (3, 3, 2), (4, 2, 3), (4, 3, 4)]


@pytest.mark.parametrize("K,L,seed", WORLDS)
@pytest.mark.parametrize("schedule", [{"name": "loglinear", "eps": 0.0}, {"name": "cosine", "eps": 0.0}, {"name": "cosine_sqr", "eps": 0.0}])
def test_continuous_nelbo_exact(K, L, seed, schedule):
    world = TinyWorld.random(K, L, seed=seed)
    obj = MDLMObjective(vocab=world.vocab, schedule=schedule, sampling_eps=0.0)
    n = 8 if schedule["name"] == "loglinear" else 48  # loglinear: integrand is a polynomial of degree L-1
    nelbo = quadrature_nelbo(obj, world.denoiser, world, n=n)
    torch.testing.assert_close(nelbo, -torch.log(world.probs), atol=1e-6, rtol=0)


def test_linear_sigma_schedule_exact():
    world = TinyWorld.random(3, 3, seed=7)
    obj = MDLMObjective(vocab=world.vocab, schedule={"name": "linear", "sigma_max": 40.0}, sampling_eps=0.0)
    nelbo = quadrature_nelbo(obj, world.denoiser, world, n=96)
    torch.testing.assert_close(nelbo, -torch.log(world.probs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_nelbo_is_upper_bound_for_other_denoisers(seed):
    """For any denoiser theta, NELBO_theta(x) >= -log p_theta(x) (the model's own marginal), hence
    (a) sum_x exp(-NELBO_theta(x)) <= 1 and (b) E_p[NELBO_theta] >= H(p) = E_p[-log p(x)], with
    equality only for the exact denoiser. (Pointwise NELBO_theta(x) >= -log p(x) is *not* a theorem:
    a wrong model may assign some x more mass than p does.)"""
    world = TinyWorld.random(3, 3, seed=10 + seed)
    obj = MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, sampling_eps=0.0)
    entropy = float((world.probs * -torch.log(world.probs)).sum())
    exact = quadrature_nelbo(obj, world.denoiser, world, n=8)
    assert abs(float(torch.exp(-exact).sum()) - 1.0) < 1e-9
    for scale in (0.1, 1.0, 3.0):
        nelbo = quadrature_nelbo(obj, random_denoiser(world, seed, scale), world, n=8)
        assert float(torch.exp(-nelbo).sum()) <= 1.0 + 1e-12
        assert float((world.probs * nelbo).sum()) > entropy + 1e-3  # a wrong denoiser is visibly worse
    # slightly perturbed exact denoiser: still a bound, gap small but positive
    exact_plus = lambda z, t=None: world.denoiser(z) + 0.05 * random_denoiser(world, seed)(z)
    nelbo = quadrature_nelbo(obj, exact_plus, world, n=8)
    gap = float((world.probs * nelbo).sum()) - entropy
    assert 0 < gap < 0.05
    assert float(torch.exp(-nelbo).sum()) < 1.0


def test_time_conditioning_passes_t():
    world = TinyWorld.random(2, 3, seed=0)
    seen = []

    def den(z, t):
        seen.append(t)
        return world.denoiser(z)

    x0 = world.sequences[:4]
    MDLMObjective(vocab=world.vocab, time_conditioning=False).loss(x0, denoiser=den)
    MDLMObjective(vocab=world.vocab, time_conditioning=True).loss(x0, denoiser=den)
    assert seen[0] is None and seen[1].shape == (4,)


@pytest.mark.parametrize("K,L,seed", [(2, 3, 0), (3, 2, 1)])
def test_discrete_time_nelbo_bounds(K, L, seed):
    """Discrete-T NELBO: valid bound (sum_x exp(-NELBO_T) <= 1), its p-average decreases with T
    towards the continuous value H(p), and pointwise it converges to -log p(x)."""
    world = TinyWorld.random(K, L, seed=seed)
    nll = -torch.log(world.probs)
    vals = []
    for T in (1, 2, 8, 64, 512):
        obj = MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, time="discrete", num_timesteps=T)
        vals.append(discrete_nelbo(obj, world.denoiser, world))
    # T = 1: one step unmasks everything at once from independent marginals: -sum_l log p(x^l)
    x = world.sequences
    marg = world.denoiser(torch.full_like(x, world.mask_id)).gather(-1, x[..., None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(vals[0], -marg)
    avg = [float((world.probs * v).sum()) for v in vals]
    for a, b in zip(avg, avg[1:]):
        assert b < a
    for v in vals:
        assert float(torch.exp(-v).sum()) <= 1.0 + 1e-12
    dev64, dev512 = (vals[-2] - nll).abs().max(), (vals[-1] - nll).abs().max()
    assert dev512 < 0.02 and dev512 < dev64 / 4  # O(1/T) convergence to the exact continuous limit


def test_ar_objective_exact():
    world = TinyWorld.random(3, 3, seed=5)
    out = ARObjective(vocab=world.vocab).loss(world.sequences, denoiser=world.ar_denoiser)
    torch.testing.assert_close(out.nelbo_per_seq, -torch.log(world.probs))


def test_sedd_exact_and_bound():
    world = TinyWorld.random(3, 3, seed=6)
    nll = -torch.log(world.probs)
    sedd = SEDDObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, sampling_eps=0.0,
                         scale_by_num_allowed=False)
    torch.testing.assert_close(quadrature_nelbo(sedd, world.denoiser, world, n=8), nll, atol=1e-6, rtol=0)
    # unnormalized scores (shifted logits) are penalized by score entropy but not by MDLM
    shifted = lambda z, t=None: world.denoiser(z) + 0.3
    mdlm = MDLMObjective(vocab=world.vocab, schedule={"name": "loglinear", "eps": 0.0}, sampling_eps=0.0)
    s_val = quadrature_nelbo(sedd, shifted, world, n=8)
    m_val = quadrature_nelbo(mdlm, shifted, world, n=8)
    torch.testing.assert_close(m_val, nll, atol=1e-6, rtol=0)
    assert (s_val > nll + 1e-3).all()
    rnd = random_denoiser(world, 3)
    assert (quadrature_nelbo(sedd, rnd, world, n=8) >= quadrature_nelbo(mdlm, rnd, world, n=8) - 1e-9).all()
    assert float(torch.exp(-quadrature_nelbo(sedd, rnd, world, n=8)).sum()) <= 1.0


def test_d3pm_with_subs_equals_mdlm_discrete_and_ablations_are_worse():
    world = TinyWorld.random(2, 3, seed=8)
    T = 16
    sched = {"name": "loglinear", "eps": 0.0}
    rnd = random_denoiser(world, 1)
    mdlm = MDLMObjective(vocab=world.vocab, schedule=sched, time="discrete", num_timesteps=T)
    full = D3PMObjective(vocab=world.vocab, schedule=sched, num_timesteps=T, carry_over=True, zero_masking=True)
    torch.testing.assert_close(discrete_nelbo(full, rnd, world), discrete_nelbo(mdlm, rnd, world))
    exact_ref = discrete_nelbo(mdlm, world.denoiser, world)
    nll = -torch.log(world.probs)
    for co, zm in [(False, False), (False, True), (True, False)]:
        d3 = D3PMObjective(vocab=world.vocab, schedule=sched, num_timesteps=T, carry_over=co, zero_masking=zm)
        v = discrete_nelbo(d3, rnd, world)
        assert float(torch.exp(-v).sum()) <= 1.0 + 1e-12  # a valid bound for the model's marginal
        # with the exact denoiser (no mass on [MASK], exact self-prediction) all variants coincide
        torch.testing.assert_close(discrete_nelbo(d3, world.denoiser, world), exact_ref)
    # without carry-over a model that is unsure about visible tokens pays for it
    no_co = D3PMObjective(vocab=world.vocab, schedule=sched, num_timesteps=T, carry_over=False, zero_masking=True)
    with_co = D3PMObjective(vocab=world.vocab, schedule=sched, num_timesteps=T, carry_over=True, zero_masking=True)
    assert (discrete_nelbo(no_co, rnd, world) > discrete_nelbo(with_co, rnd, world) + 1e-3).all()


# ----------------------------------------------------------------- schedules with alpha(0) < 1 or alpha(1) > 0
# The samplers start from all-[MASK] at t = 1 whatever alpha(1) is, and reveal what is left in their last step:
# they sample the reverse process of the forward process *conditioned on z_1 = all [MASK]*
# (1 - alpha~_t = (1 - alpha_t) / (1 - alpha_1)). Its NELBO has no prior term (KL = 0) and, with alpha(0) < 1, a
# finite reconstruction term at t = 0. The plain integral of the schedule (the number reported before) drops the
# unmasked-at-t=1 mass and the reconstruction: it falls below -log p for the exact denoiser.
ENDS = {
    "loglinear_eps": {"name": "loglinear", "eps": 0.05},  # alpha(1) = 0.05
    "linear_short": {"name": "linear", "sigma_max": 3.0},  # alpha(1) = e^-3
    "cosine_eps": {"name": "cosine", "eps": 0.05},
    "geometric_wide": {"name": "geometric", "sigma_min": 0.3, "sigma_max": 20.0},  # alpha(0) = e^-0.3
}
NODES = {"loglinear_eps": 8, "linear_short": 64, "cosine_eps": 48, "geometric_wide": 128}


@pytest.mark.parametrize("name", list(ENDS))
def test_bound_is_valid_and_exact_where_it_can_be(name):
    world = TinyWorld.random(3, 3, seed=31)
    nll = -torch.log(world.probs)
    entropy = float((world.probs * nll).sum())
    obj = MDLMObjective(vocab=world.vocab, schedule=ENDS[name], sampling_eps=0.0)
    bound = exact_bound(obj, world.denoiser, world, n=NODES[name])
    alpha0 = float(obj.schedule.alpha(torch.tensor(0.0, dtype=torch.float64)))
    if alpha0 == 1.0:  # no reconstruction term: the exact denoiser's NELBO is -log p(x) exactly
        torch.testing.assert_close(bound, nll, atol=1e-6, rtol=0)
    else:  # the reconstruction from z_0 is factorized: a valid bound, slightly above the entropy
        assert float(torch.exp(-bound).sum()) <= 1.0 + 1e-12
        assert entropy < float((world.probs * bound).sum()) < entropy + 0.05
    for seed in range(3):  # any denoiser: sum_x exp(-NELBO(x)) <= 1
        other = exact_bound(obj, random_denoiser(world, seed), world, n=NODES[name])
        assert float(torch.exp(-other).sum()) <= 1 + 1e-12
    # negative control: the unconditioned integral without reconstruction is below the entropy (not a bound)
    plain = quadrature_nelbo(obj, world.denoiser, world, n=NODES[name])
    assert float((world.probs * plain).sum()) < entropy - 1e-3
    assert float(torch.exp(-plain).sum()) > 1.0 + 1e-3


def test_geometric_schedule_exact():
    """SEDD's geometric schedule at its defaults (alpha(0) = e^-1e-4, alpha(1) = e^-20): exact up to the
    O(m(0)^2) factorization of the reconstruction, for MDLM and SEDD."""
    world = TinyWorld.random(3, 3, seed=32)
    nll = -torch.log(world.probs)
    mdlm = MDLMObjective(vocab=world.vocab, schedule={"name": "geometric"}, sampling_eps=0.0)
    sedd = SEDDObjective(vocab=world.vocab, schedule={"name": "geometric"}, sampling_eps=0.0,
                         scale_by_num_allowed=False)
    for obj in (mdlm, sedd):
        torch.testing.assert_close(exact_bound(obj, world.denoiser, world, n=96), nll, atol=1e-6, rtol=0)
    # negative control: without the reconstruction term the value misses ~m(0) * L * CE, far above 1e-6
    plain = quadrature_nelbo(mdlm.bound_objective(), world.denoiser, world, n=96)
    assert float((nll - plain).min()) > 1e-5


@pytest.mark.parametrize("name", ["loglinear_eps", "geometric_wide"])
def test_discrete_time_bound_with_alpha_ends(name):
    """T-step MDLM (the last step reveals everything, as the ancestral sampler does, also when alpha(0) < 1)
    and D3PM on the conditioned process: valid bounds; with alpha(1) > 0 the unconditioned values are not."""
    world = TinyWorld.random(2, 3, seed=33)
    entropy = float((world.probs * -torch.log(world.probs)).sum())
    for obj in (MDLMObjective(vocab=world.vocab, schedule=ENDS[name], time="discrete", num_timesteps=8),
                D3PMObjective(vocab=world.vocab, schedule=ENDS[name], num_timesteps=8, carry_over=True,
                              zero_masking=True)):
        bound = obj.bound_objective()
        exact = discrete_nelbo(bound, world.denoiser, world)
        assert float((world.probs * exact).sum()) >= entropy - 1e-12
        for seed in range(3):
            assert float(torch.exp(-discrete_nelbo(bound, random_denoiser(world, seed), world)).sum()) <= 1 + 1e-12
        if name == "loglinear_eps":  # negative control: without conditioning the alpha(1) mass is lost
            plain = discrete_nelbo(obj, world.denoiser, world)
            assert float((world.probs * plain).sum()) < entropy - 1e-3
