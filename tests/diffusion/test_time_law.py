"""The samplers' unmasking-time law, checked with denoisers whose output depends on *when* a token unmasks.

A denoiser that ignores t (the exact tiny-world denoiser) makes every unmasking schedule give the same
sequences, so a wrong time law would pass the frequency tests in test_samplers.py. Here:

* ``pi(t)``: every position, whatever the context, is drawn from ``pi(t) = [t^2, 2t(1-t), (1-t)^2]`` at the
  time the sampler passes (time conditioning on). The law of a sampled token is then ``E[pi(tau)]`` with
  ``tau`` the unmasking time: for the exact continuous-time process (first-hitting) ``m(tau)/m(1) ~ U(0,1)``
  (``m = 1 - alpha``), for the T-step samplers (ancestral, SEDD) step k (t = k/T) with probability
  ``(m(k/T) - m((k-1)/T)) / m(1)`` and the last step taking what is left. Closed form per schedule.
* ``pi(n)``: the token law depends on how many positions of the row are still masked (a function of z only,
  so the cached sampler may use it): it sees the ties of the T-step samplers (two tokens unmasked in the same
  step both see n = 2) that the continuous process never has.

Each test has negative controls: the same samples against the law of another schedule, of a time shifted by
one step, or of the tie-free continuous process are rejected far below the acceptance level.
"""

import itertools

import pytest
import torch

from genodiff.diffusion.sampling import make_sampler
from genodiff.diffusion.schedules import make_schedule
from genodiff.diffusion.testing import TinyWorld
from genodiff.diffusion.vocab import DiffusionVocab

from _helpers import chi2_pvalue

N = 20000
T = 8
ALPHA = 1e-3
K, L = 3, 2
VOCAB = DiffusionVocab.generic(K)

SCHEDULES = {
    "loglinear_eps0": {"name": "loglinear", "eps": 0.0},
    "loglinear": {"name": "loglinear"},  # eps = 1e-3: the samplers start from all-[MASK] anyway
    "cosine": {"name": "cosine", "eps": 0.0},
    "geometric": {"name": "geometric"},  # alpha(0) < 1 and alpha(1) > 0
    "linear": {"name": "linear", "sigma_max": 3.0},  # alpha(1) = 0.05
}


def pi(t: torch.Tensor) -> torch.Tensor:
    """[..., K] float64 token law at time t."""
    t = t.to(torch.float64)
    return torch.stack([t * t, 2 * t * (1 - t), (1 - t) * (1 - t)], -1)


def time_denoiser(z, t):
    assert t is not None, "the time-dependent denoiser needs time conditioning"
    p = pi(t)[:, None, :].expand(z.shape[0], z.shape[1], K)
    out = torch.full(z.shape + (K + 1,), float("-inf"), dtype=torch.float64)
    out[..., :K] = torch.log(p)
    return out


def step_law(schedule, num_steps: int) -> torch.Tensor:
    """P(a position unmasks in step k), k = 1..T (index k-1), for the T-step samplers."""
    s = make_schedule(schedule)
    m = s.mask_prob(torch.arange(num_steps + 1, dtype=torch.float64) / num_steps)
    r = m / m[-1]
    r[0] = 0.0  # the last step (k = 1) reveals what is left
    r[-1] = 1.0
    return r[1:] - r[:-1]


def discrete_token_law(schedule, num_steps: int = T, shift: int = 0) -> torch.Tensor:
    """Token law of the T-step samplers: sum_k P(step k) pi(k/T) (``shift``: a wrong time, (k - shift)/T)."""
    k = torch.arange(1, num_steps + 1, dtype=torch.float64)
    t = ((k - shift) / num_steps).to(torch.float32)  # the samplers pass t as float32
    return (step_law(schedule, num_steps)[:, None] * pi(t)).sum(0)


def continuous_token_law(schedule, n: int = 200_000) -> torch.Tensor:
    """E[pi(tau)] with m(tau)/m(1) ~ U(0,1) (midpoint rule in u; tau clamped to [0, 1] as the sampler does)."""
    s = make_schedule(schedule)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    tau = s.t_from_mask_prob(u * s.mask_prob(torch.tensor(1.0, dtype=torch.float64)))
    return pi(tau.to(torch.float32)).mean(0)


def joint(token_law: torch.Tensor) -> torch.Tensor:
    """Law of the L = 2 independent positions over the K**L sequences (TinyWorld order)."""
    return torch.outer(token_law, token_law).reshape(-1)


def seq_index(tokens):
    return tokens[:, 0] * K + tokens[:, 1]


def sample(method, schedule, seed, denoiser=time_denoiser, time_conditioning=True, num_steps=T):
    spec = {"method": method, "num_steps": num_steps, "schedule": schedule, "time_conditioning": time_conditioning}
    if method == "sedd":
        spec["sedd_scale_by_num_allowed"] = False  # log pi are normalized log-probabilities
    out = make_sampler(spec, VOCAB).sample(denoiser, N, L, generator=torch.Generator().manual_seed(seed))
    assert (out.tokens < K).all()
    return seq_index(out.tokens)


OTHER = {"loglinear_eps0": "cosine", "loglinear": "cosine", "cosine": "loglinear_eps0",
         "geometric": "loglinear_eps0", "linear": "geometric"}


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("method", ["ancestral", "sedd", "first_hitting"])
def test_time_dependent_denoiser_gives_the_exact_law(method, name):
    schedule = SCHEDULES[name]
    law = continuous_token_law if method == "first_hitting" else discrete_token_law
    idx = sample(method, schedule, seed=sum(map(ord, method + name)))
    p_ok = chi2_pvalue(idx, joint(law(schedule)))
    assert p_ok > ALPHA, p_ok
    # negative controls: the unmasking times of another schedule, and (T-step samplers) a time one step late
    p_other = chi2_pvalue(idx, joint(law(SCHEDULES[OTHER[name]])))
    assert p_other < 1e-6, p_other
    if method != "first_hitting":
        p_shift = chi2_pvalue(idx, joint(discrete_token_law(schedule, shift=1)))
        assert p_shift < 1e-6, p_shift


# ------------------------------------------------------------------ count-dependent denoiser (cached allowed)
PI_N = {1: torch.tensor([0.8, 0.15, 0.05], dtype=torch.float64), 2: torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)}


def count_denoiser(z, t=None):
    n = (z == VOCAB.mask_id).sum(-1).clamp(min=1, max=2)  # masked positions in the row (this one included)
    p = torch.where((n == 1)[:, None], PI_N[1][None], PI_N[2][None])[:, None, :].expand(z.shape[0], z.shape[1], K)
    out = torch.full(z.shape + (K + 1,), float("-inf"), dtype=torch.float64)
    out[..., :K] = torch.log(p)
    return out


def tied_law(schedule, num_steps: int) -> torch.Tensor:
    """T-step samplers: position i unmasking in step k_i sees n = #{j: k_j <= k_i} masked positions."""
    pk = step_law(schedule, num_steps)
    law = torch.zeros(K ** L, dtype=torch.float64)
    for k1, k2 in itertools.product(range(num_steps), repeat=2):
        n1, n2 = 1 + int(k2 <= k1), 1 + int(k1 <= k2)
        law += pk[k1] * pk[k2] * torch.outer(PI_N[n1], PI_N[n2]).reshape(-1)
    return law


def tie_free_law() -> torch.Tensor:
    """Continuous time: one position unmasks first (n = 2), the other last (n = 1), each first w.p. 1/2."""
    return 0.5 * (torch.outer(PI_N[2], PI_N[1]) + torch.outer(PI_N[1], PI_N[2])).reshape(-1)


@pytest.mark.parametrize("name", ["loglinear", "cosine", "geometric"])
def test_count_dependent_denoiser_cached_ancestral_and_first_hitting(name):
    schedule = SCHEDULES[name]
    steps = 4
    cached = sample("cached", schedule, 11, count_denoiser, time_conditioning=False, num_steps=steps)
    ancestral = sample("ancestral", schedule, 11, count_denoiser, time_conditioning=False, num_steps=steps)
    assert torch.equal(cached, ancestral)  # same seed, same law, same tokens
    assert chi2_pvalue(cached, tied_law(schedule, steps)) > ALPHA
    assert chi2_pvalue(cached, tie_free_law()) < 1e-6  # negative control: the ties are seen
    fh = sample("first_hitting", schedule, 12, count_denoiser, time_conditioning=False)
    assert chi2_pvalue(fh, tie_free_law()) > ALPHA
    assert chi2_pvalue(fh, tied_law(schedule, steps)) < 1e-6


# ------------------------------------------------------------------ geometric schedule, exhaustive tiny world
def test_geometric_schedule_samplers_reproduce_p():
    world = TinyWorld.random(3, 3, seed=23)
    geo = make_sampler({"method": "first_hitting", "schedule": {"name": "geometric"}}, world.vocab)
    out = geo.sample(world.denoiser, N, world.L, generator=torch.Generator().manual_seed(13))
    assert chi2_pvalue(world.seq_index(out.tokens), world.probs) > ALPHA
    # negative control: revealing every position at once (one step) gives independent marginals
    one = make_sampler({"method": "ancestral", "num_steps": 1, "schedule": {"name": "geometric"}}, world.vocab)
    bad = one.sample(world.denoiser, N, world.L, generator=torch.Generator().manual_seed(14))
    assert chi2_pvalue(world.seq_index(bad.tokens), world.probs) < 1e-8
