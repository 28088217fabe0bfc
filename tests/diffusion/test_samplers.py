"""Samplers driven by the exact tiny-world denoiser reproduce p(x) (chi-square at fixed seeds)."""

import pytest
import torch

from genodiff.diffusion.sampling import (
    ancestral_sample,
    ar_sample,
    dilated_order,
    first_hitting_sample,
    make_sampler,
    sample_categorical,
    sedd_analytic_sample,
    token_probs,
)
from genodiff.diffusion.schedules import make_schedule
from genodiff.diffusion.testing import TinyWorld

from _helpers import chi2_pvalue

N = 20000
ALPHA = 1e-3  # reject level; every test also checks a wrong sampler is rejected far below it


@pytest.fixture(scope="module")
def world():
    return TinyWorld.random(3, 3, seed=21)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def pval(world, tokens, probs=None):
    return chi2_pvalue(world.seq_index(tokens), world.probs if probs is None else probs)


def test_first_hitting_reproduces_p(world):
    out = first_hitting_sample(world.denoiser, world.vocab, N, world.L, generator=gen(0))
    assert out.num_denoiser_calls == world.L
    assert pval(world, out.tokens) > ALPHA


def test_ancestral_and_cached_reproduce_p(world):
    sched = make_schedule("loglinear")
    a = ancestral_sample(world.denoiser, world.vocab, N, world.L, schedule=sched, num_steps=500, generator=gen(1))
    c = ancestral_sample(world.denoiser, world.vocab, N, world.L, schedule=sched, num_steps=500, cache=True, generator=gen(1))
    assert torch.equal(a.tokens, c.tokens)
    assert pval(world, a.tokens) > ALPHA
    # negative control: one step = independent marginals; must be rejected
    bad = ancestral_sample(world.denoiser, world.vocab, N, world.L, num_steps=1, generator=gen(2))
    assert pval(world, bad.tokens) < 1e-8


def test_wrong_temperature_is_rejected(world):
    bad = first_hitting_sample(world.denoiser, world.vocab, N, world.L, temperature=0.8, generator=gen(3))
    assert pval(world, bad.tokens) < 1e-8


@pytest.mark.parametrize("pattern", ["prefix", "suffix", "middle", "ends"])
@pytest.mark.parametrize("method", ["first_hitting", "cached"])
def test_infilling_matches_true_conditional(pattern, method):
    world = TinyWorld.random(3, 4, seed=22)
    known_mask = {
        "prefix": [True, True, False, False],
        "suffix": [False, False, True, True],
        "middle": [False, True, True, False],
        "ends": [True, False, False, True],
    }[pattern]
    known_mask = torch.tensor(known_mask)
    known = torch.tensor([1, 2, 0, 1])
    sampler = make_sampler(method, world.vocab, num_steps=400, schedule={"name": "cosine"})
    out = sampler.sample(world.denoiser, N // 2, world.L, known_tokens=known, known_mask=known_mask, generator=gen(4))
    assert (out.tokens[:, known_mask] == known[known_mask]).all()
    cond = world.conditional(known, known_mask)
    assert pval(world, out.tokens, cond) > ALPHA
    if method == "first_hitting":
        assert out.num_denoiser_calls == int((~known_mask).sum())
    # negative control: the unconditional distribution restricted to the known values is wrong
    # unless the denoiser conditions; sampling the unknowns from unconditional marginals must fail
    uncond = lambda z, t=None: world.denoiser(torch.full_like(z, world.mask_id))
    bad = first_hitting_sample(uncond, world.vocab, N // 2, world.L, known_tokens=known, known_mask=known_mask, generator=gen(5))
    assert pval(world, bad.tokens, cond) < 1e-6


def _recording(den):
    seen = []

    def f(z, t=None):
        seen.append(z.clone())
        return den(z, t)

    return f, seen


@pytest.mark.parametrize("seed", range(3))
def test_cached_bit_identical_and_calls(seed):
    world = TinyWorld.random(4, 4, seed=seed)
    T = 64
    fa, seen_a = _recording(world.denoiser)
    fc, seen_c = _recording(world.denoiser)
    known = torch.tensor([0, 0, 0, 3])
    km = torch.tensor([False, False, False, True])
    a = ancestral_sample(fa, world.vocab, 1, world.L, num_steps=T, known_tokens=known, known_mask=km, generator=gen(seed))
    c = ancestral_sample(fc, world.vocab, 1, world.L, num_steps=T, known_tokens=known, known_mask=km, cache=True, generator=gen(seed))
    assert torch.equal(a.tokens, c.tokens)
    assert a.num_denoiser_calls == len(seen_a) and c.num_denoiser_calls == len(seen_c)
    # the uncached sampler calls once per step while anything is masked; the cached one calls
    # exactly once per distinct state, i.e. the uncached inputs with consecutive repeats removed
    dedup = [z for i, z in enumerate(seen_a) if i == 0 or not torch.equal(z, seen_a[i - 1])]
    assert len(dedup) == len(seen_c) and all(torch.equal(x, y) for x, y in zip(dedup, seen_c))
    assert c.num_denoiser_calls <= 3 < a.num_denoiser_calls  # at most one call per unknown token
    # batched float32 denoiser, temperature and nucleus: still identical
    net = torch.nn.Sequential(torch.nn.Embedding(world.vocab.size, 8), torch.nn.Linear(8, world.vocab.size))
    den = lambda z, t=None: net(z)
    with torch.no_grad():
        a = ancestral_sample(den, world.vocab, 8, 16, num_steps=200, temperature=0.7, top_p=0.9, generator=gen(seed))
        c = ancestral_sample(den, world.vocab, 8, 16, num_steps=200, temperature=0.7, top_p=0.9, cache=True, generator=gen(seed))
    assert torch.equal(a.tokens, c.tokens) and c.num_denoiser_calls < a.num_denoiser_calls


def test_cached_rejects_time_conditioning(world):
    with pytest.raises(ValueError):
        ancestral_sample(world.denoiser, world.vocab, 1, 3, cache=True, time_conditioning=True)


def test_time_conditioning_receives_decreasing_times(world):
    ts = []

    def den(z, t):
        ts.append(t.clone())
        return world.denoiser(z)

    first_hitting_sample(den, world.vocab, 2, world.L, time_conditioning=True, generator=gen(0))
    t = torch.stack(ts)  # [calls, B]
    assert (t[1:] <= t[:-1]).all() and (t >= 0).all() and (t <= 1).all()
    ts.clear()
    ancestral_sample(den, world.vocab, 2, world.L, num_steps=10, time_conditioning=True, generator=gen(0))
    assert ts[0][0].item() == 1.0


def test_sedd_analytic_reproduces_p(world):
    out = sedd_analytic_sample(world.denoiser, world.vocab, N // 2, world.L, num_steps=500,
                               scale_by_num_allowed=False, generator=gen(6))
    assert out.num_denoiser_calls <= 500
    assert pval(world, out.tokens) > ALPHA
    # negative control: a denoiser that ignores the context must be rejected
    uncond = lambda z, t=None: world.denoiser(torch.full_like(z, world.mask_id))
    bad = sedd_analytic_sample(uncond, world.vocab, N // 2, world.L, num_steps=500, scale_by_num_allowed=False, generator=gen(6))
    assert pval(world, bad.tokens) < 1e-6


def test_sedd_analytic_at_eps_zero_reproduces_p(world):
    """Log-linear at eps = 0 (alpha(1) = 0): the first step's weights are the limit (alpha_s - alpha_t)/(1 - alpha_t),
    not 0 * inf (which made every token [CLS])."""
    sched = make_schedule({"name": "loglinear", "eps": 0.0})
    out = sedd_analytic_sample(world.denoiser, world.vocab, N // 2, world.L, schedule=sched, num_steps=500,
                               scale_by_num_allowed=False, generator=gen(8))
    assert (out.tokens < world.K).all()
    assert pval(world, out.tokens) > ALPHA
    # negative control: a denoiser that ignores the context must be rejected
    uncond = lambda z, t=None: world.denoiser(torch.full_like(z, world.mask_id))
    bad = sedd_analytic_sample(uncond, world.vocab, N // 2, world.L, schedule=sched, num_steps=500,
                               scale_by_num_allowed=False, generator=gen(8))
    assert pval(world, bad.tokens) < 1e-6


def test_ar_sampler_reproduces_p(world):
    out = ar_sample(world.ar_denoiser, world.vocab, N, world.L, generator=gen(7))
    assert out.num_denoiser_calls == world.L
    assert pval(world, out.tokens) > ALPHA


def test_categorical_float64_and_nucleus():
    probs = torch.tensor([0.0, 0.5, 1e-9, 0.25, 0.0, 0.25 - 1e-9], dtype=torch.float64)
    u = torch.rand(200000, generator=gen(0), dtype=torch.float64)
    draws = sample_categorical(probs.expand(200000, 6), u)
    assert not torch.isin(draws, torch.tensor([0, 4])).any()
    assert chi2_pvalue(draws, probs) > ALPHA
    assert sample_categorical(probs[None], torch.tensor([0.0], dtype=torch.float64)).item() == 1
    assert sample_categorical(probs[None], torch.tensor([1 - 1e-16], dtype=torch.float64)).item() == 5
    from genodiff.diffusion.vocab import DiffusionVocab

    v = DiffusionVocab.generic(4)  # ids 0..3, mask 4
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05, 0.9]))
    p = token_probs(logits, v)
    torch.testing.assert_close(p, torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0], dtype=torch.float64))
    pt = token_probs(logits, v, temperature=0.5)
    q = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64) ** 2
    torch.testing.assert_close(pt[:4], q / q.sum())
    pn = token_probs(logits, v, top_p=0.8)
    torch.testing.assert_close(pn, torch.tensor([0.625, 0.375, 0, 0, 0], dtype=torch.float64))
    pn = token_probs(logits, v, top_p=0.81)
    assert (pn[:3] > 0).all() and pn[3] == 0


def test_dna_outputs_restricted():
    from genodiff.diffusion.vocab import DiffusionVocab

    v = DiffusionVocab.dna()
    logits = torch.zeros(2, 50, 12)
    logits[..., 3] = 50.0  # a backbone that loves [MASK] and specials
    logits[..., 0] = 40.0
    for method in ["cached", "first_hitting", "ancestral", "sedd", "ar"]:
        out = make_sampler(method, v, num_steps=20).sample(lambda z, t=None: logits, 2, 50, generator=gen(0))
        assert torch.isin(out.tokens, torch.tensor([7, 8, 9, 10])).all()
        assert out.num_denoiser_calls > 0
    with pytest.raises(ValueError):
        make_sampler("nope", v)
    s1 = make_sampler({"method": "first_hitting", "seed": 5}, v).sample(lambda z, t=None: logits * 0, 1, 30)
    s2 = make_sampler({"method": "first_hitting", "seed": 5}, v).sample(lambda z, t=None: logits * 0, 1, 30)
    assert torch.equal(s1.tokens, s2.tokens)  # config seed makes runs reproducible


def test_categorical_rounding_edge():
    probs = torch.tensor([[0.3, 0.7, 0.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([torch.nextafter(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)).item()],
                     dtype=torch.float64)
    assert sample_categorical(probs * 3.0, u).item() == 1
    assert sample_categorical(probs, torch.zeros(1, dtype=torch.float64)).item() == 0


@pytest.mark.parametrize("schedule", ["loglinear", "cosine"])
@pytest.mark.parametrize("method,T,batch,masked", [("cached", 64, 1, 24), ("cached", 16, 3, 10),
                                                   ("ancestral", 8, 2, 6), ("ancestral", 32, 1, 2)])
def test_expected_calls_matches_the_samplers_mean(schedule, method, T, batch, masked):
    """Sampler.expected_calls (progress bars, time estimates) against the mean call count of the real sampler
    over 400 seeds: within 4 standard errors; where the naive "T calls" differs, it is far outside them."""
    vocab = make_sampler("first_hitting").vocab
    sampler = make_sampler({"method": method, "num_steps": T, "schedule": {"name": schedule}})
    den = lambda z, t=None: torch.zeros(z.shape + (vocab.size,))
    counts = torch.tensor([float(sampler.sample(den, batch, masked, generator=gen(seed)).num_denoiser_calls)
                           for seed in range(400)])
    expected = sampler.expected_calls(masked, batch)
    se = float(counts.std()) / 400 ** 0.5
    assert abs(float(counts.mean()) - expected) < 4 * se + 1e-9, (float(counts.mean()), expected, se)
    assert expected <= T
    if T - expected > 1:  # the naive estimate "T calls" is detectably wrong here, and the test sees it
        assert abs(T - float(counts.mean())) > 10 * se


def test_expected_calls_exact_samplers():
    fh = make_sampler("first_hitting")
    assert fh.expected_calls(37, 5) == 37.0 and fh.expected_calls(0, 5) == 0.0
    assert make_sampler("ar").expected_calls(3, 2, length=10) == 10.0
    assert make_sampler("sedd", num_steps=12).expected_calls(5, 1) == 12.0
    # cached with many masked tokens per step calls at every step; with one token, once
    assert make_sampler("cached", num_steps=50).expected_calls(10_000, 4) == pytest.approx(50.0)
    assert make_sampler("cached", num_steps=50).expected_calls(1, 1) == pytest.approx(1.0)


# ------------------------------------------------------------------------------- dilated reveal order
@pytest.mark.parametrize("length", [1, 2, 3, 7, 16, 100, 1024])
def test_dilated_order_is_a_coarse_to_fine_permutation(length):
    order = dilated_order(length)
    assert sorted(order.tolist()) == list(range(length))
    if length & (length - 1) == 0:  # a power of two: every aligned block of 2^m ranks is one residue class
        for m in range(length.bit_length()):
            size = 2 ** m
            for block in order.view(-1, size):
                assert len({int(p) % (length // size) for p in block}) == 1


@pytest.mark.parametrize("order,length,T,min_gap", [("dilated", 1024, 32, 32), ("random", 1024, 32, 1),
                                                   ("dilated", 1000, 32, 16), ("dilated", 251, 16, 6),
                                                   ("random", 1000, 32, 1)])
def test_dilated_steps_reveal_spread_out_positions(order, length, T, min_gap):
    """L = 1,024, T = 32: every step of the dilated order reveals exactly 32 positions per row, pairwise at
    least 32 apart (cyclically); other lengths at least about T/3 apart; the random order (the negative
    control) reveals neighbours together."""
    vocab = make_sampler("first_hitting").vocab
    seen = []
    den = lambda z, t=None: (seen.append(z.clone()), torch.zeros(z.shape + (vocab.size,)))[1]
    out = make_sampler({"method": "cached", "num_steps": T, "order": order}).sample(den, 8, length, generator=gen(7))
    assert out.num_denoiser_calls == T == len(seen)
    states = seen + [out.tokens]
    gaps, counts = [], []
    for before, after in zip(states, states[1:]):
        revealed = (before == vocab.mask_id) & (after != vocab.mask_id)
        for row in revealed:
            pos = torch.nonzero(row).flatten()
            counts.append(pos.numel())
            d = torch.diff(torch.cat([pos, pos[:1] + length]))
            gaps.append(int(d.min()))
    assert (min(gaps) >= min_gap) if order == "dilated" else (min(gaps) == 1)
    if length == 1024 and order == "dilated":
        assert set(counts) == {32}


@pytest.mark.parametrize("known", [None, "ends"])
def test_dilated_one_reveal_per_step_reproduces_p(known):
    """With one position revealed per step, any order samples the exact denoiser's joint: the dilated order
    reproduces p(x) (and the conditional given known ends); one step (all at once) is rejected."""
    world = TinyWorld.random(3, 4, seed=23)
    sampler = make_sampler({"method": "cached", "num_steps": 64, "order": "dilated"}, world.vocab)
    kw, target = {}, world.probs
    if known:
        known_tokens, known_mask = torch.tensor([2, 0, 0, 1]), torch.tensor([True, False, False, True])
        kw = dict(known_tokens=known_tokens, known_mask=known_mask)
        target = world.conditional(known_tokens, known_mask)
    out = sampler.sample(world.denoiser, N // 2, world.L, generator=gen(8), **kw)
    assert pval(world, out.tokens, target) > ALPHA
    assert out.num_denoiser_calls == (2 if known else 4)
    one_step = make_sampler({"method": "cached", "num_steps": 1, "order": "dilated"}, world.vocab)
    bad = one_step.sample(world.denoiser, N // 2, world.L, generator=gen(9), **kw)
    assert pval(world, bad.tokens, target) < 1e-6


@pytest.mark.parametrize("method", ["cached", "ancestral"])
@pytest.mark.parametrize("T,length,known", [(32, 1024, 0), (128, 1000, 0), (64, 40, 10), (16, 300, 299)])
def test_dilated_expected_calls_are_exact(method, T, length, known):
    vocab = make_sampler("first_hitting").vocab
    sampler = make_sampler({"method": method, "num_steps": T, "order": "dilated"})
    den = lambda z, t=None: torch.zeros(z.shape + (vocab.size,))
    known_mask = torch.arange(length) < known  # a known prefix
    out = sampler.sample(den, 2, length, known_tokens=torch.zeros(length, dtype=torch.long), known_mask=known_mask,
                         generator=gen(10))
    assert out.num_denoiser_calls == sampler.expected_calls(length - known, 2)


def test_unknown_order_is_rejected(world):
    with pytest.raises(ValueError, match="order"):
        make_sampler({"method": "cached", "order": "spiral"})
    with pytest.raises(ValueError, match="order"):
        ancestral_sample(world.denoiser, world.vocab, 1, 3, order="spiral")
