"""A NaN or +inf from the denoiser stops every sampler and every likelihood estimator with one clear error.

Before the guard, ``sample_categorical`` turned a NaN row into token 0 ([CLS] for DNA) and the estimators
returned NaN as a number. Each test poisons one logit of one call and checks the error names the sampler (or
estimator) and the step; the control runs the same code unpoisoned and gets tokens / finite values.
"""

import re

import pytest
import torch

from genodiff.diffusion.likelihood import estimate_nelbo
from genodiff.diffusion.objectives import ARObjective, D3PMObjective, MDLMObjective, SEDDObjective
from genodiff.diffusion.sampling import make_sampler, sample_categorical
from genodiff.diffusion.testing import TinyWorld
from genodiff.errors import NonFiniteError


@pytest.fixture(scope="module")
def world():
    return TinyWorld.random(3, 4, seed=5)


def poisoned(den, after: int, value=float("nan"), row: int = 0):
    """``den`` whose call number ``after + 1`` onwards has ``value`` at one allowed logit (id 0, last position)."""
    calls = [0]

    def f(z, t=None):
        out = den(z, t).clone()
        calls[0] += 1
        if calls[0] > after:
            out[row, -1, 0] = value
        return out

    return f


SAMPLERS = ["ancestral", "cached", "first_hitting", "sedd", "ar"]


def _den(world, method):
    return world.ar_denoiser if method == "ar" else world.denoiser


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("method", SAMPLERS)
def test_every_sampler_stops_on_a_non_finite_logit(world, method, value):
    sampler = make_sampler({"method": method, "num_steps": 6, "seed": 0}, world.vocab)
    good = sampler.sample(_den(world, method), 8, world.L)  # control: the same run unpoisoned gives tokens
    assert (good.tokens < world.K).all()
    with pytest.raises(NonFiniteError) as err:
        sampler.sample(poisoned(_den(world, method), after=1, value=value), 8, world.L)
    msg = str(err.value)
    assert method in msg and re.search(r"step \d+ of \d+", msg) and "denoiser call 2" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("method", SAMPLERS)
def test_a_nan_in_a_row_that_is_not_drawn_also_stops(world, method):
    """"A NaN anywhere": the poisoned row's position is already known (kept), the error still comes."""
    sampler = make_sampler({"method": method, "num_steps": 6, "seed": 0}, world.vocab)
    known = torch.tensor([0, 1, 2, 0])
    km = torch.tensor([False, False, False, True])  # the poisoned position (last) is known
    with pytest.raises(NonFiniteError, match=method):
        sampler.sample(poisoned(_den(world, method), after=0), 4, world.L, known_tokens=known, known_mask=km)


def test_no_allowed_token_left_is_an_error(world):
    """All allowed logits -inf at a drawn position: no distribution to draw from (was: token 0)."""

    def den(z, t=None):
        out = world.denoiser(z).clone()
        out[:, 0, : world.K] = float("-inf")
        return out

    with pytest.raises(NonFiniteError, match="first_hitting"):
        make_sampler("first_hitting", world.vocab).sample(den, 2, world.L, generator=torch.Generator().manual_seed(0))


def test_sample_categorical_refuses_nan_rows():
    probs = torch.tensor([[0.2, 0.8], [float("nan"), 0.5], [0.0, 0.0]], dtype=torch.float64)
    u = torch.full((3,), 0.5, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match="2 of 3 rows"):
        sample_categorical(probs, u)
    assert sample_categorical(probs[:1], u[:1]).tolist() == [1]  # control


def _objectives(world):
    sched = {"name": "cosine", "eps": 0.0}
    return {
        "mdlm": MDLMObjective(vocab=world.vocab, schedule=sched, sampling_eps=0.0),
        "mdlm_tc": MDLMObjective(vocab=world.vocab, schedule=sched, sampling_eps=0.0, time_conditioning=True),
        "mdlm_discrete": MDLMObjective(vocab=world.vocab, schedule=sched, time="discrete", num_timesteps=8),
        "sedd": SEDDObjective(vocab=world.vocab, schedule=sched, sampling_eps=0.0),
        "d3pm": D3PMObjective(vocab=world.vocab, schedule=sched, num_timesteps=8),
    }


@pytest.mark.parametrize("method", ["antithetic", "iid", "quadrature", "num_masked"])
def test_estimate_nelbo_stops_on_non_finite(world, method):
    obj = _objectives(world)["mdlm"]
    x = world.sequences
    gen = lambda: torch.Generator().manual_seed(0)
    good = estimate_nelbo(obj, world.denoiser, x, num_samples=8, method=method, generator=gen())
    assert torch.isfinite(good.nelbo).all()  # control
    # poison every call at every row: whatever is masked, the NELBO is NaN
    den = lambda z, t=None: torch.full_like(world.denoiser(z), float("nan"))
    with pytest.raises(NonFiniteError) as err:
        estimate_nelbo(obj, den, x, num_samples=8, method=method, generator=gen())
    assert method in str(err.value) and "draw 1 of" in str(err.value)


@pytest.mark.parametrize("name", ["mdlm_tc", "mdlm_discrete", "sedd", "d3pm", "ar"])
def test_estimate_nelbo_stops_on_non_finite_for_every_objective(world, name):
    obj = ARObjective(vocab=world.vocab) if name == "ar" else _objectives(world)[name]
    den = world.ar_denoiser if name == "ar" else world.denoiser
    bad = lambda z, t=None: den(z, t) * float("nan")
    with pytest.raises(NonFiniteError, match="non-finite NELBO"):
        estimate_nelbo(obj, bad, world.sequences, num_samples=4, generator=torch.Generator().manual_seed(0))
