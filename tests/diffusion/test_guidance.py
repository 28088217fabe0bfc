"""Classifier-free and classifier guidance (genodiff.diffusion.guidance) on exhaustive labelled tiny worlds.

Oracles are computed here by enumerating every sequence of the world in float64, independently of the
TinyWorld tables the denoisers use: the guided token law at every partially masked state, the two-step
guided chain of the ancestral sampler, exact conditional sampling at w = 0 (chi-square, with negative
controls rejected far below the level) and the planted-motif rate rising with w.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from genodiff.diffusion.guidance import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    candidate_log_probs_exact,
    candidate_log_probs_first_order,
    cfg_log_probs,
    drop_labels,
)
from genodiff.diffusion.sampling import ancestral_sample, first_hitting_sample, make_sampler
from genodiff.diffusion.schedules import make_schedule
from genodiff.diffusion.testing import TinyWorld
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import NonFiniteError
from genodiff.models import build_model

from _helpers import chi2_pvalue

N = 20000
ALPHA = 1e-3


def gen(seed):
    return torch.Generator().manual_seed(seed)


class LabelledWorld:
    """p(x, y) = pi_y p(x | y) over K**L sequences and C classes; exact labelled denoiser (null label = C) and
    the exact Bayes classifier p(y | z) for every partially masked z."""

    def __init__(self, class_probs, pi, K, L):
        self.K, self.L, self.C = K, L, len(class_probs)
        self.pi = torch.as_tensor(pi, dtype=torch.float64) / float(sum(pi))
        cp = [torch.as_tensor(p, dtype=torch.float64) / float(torch.as_tensor(p).sum()) for p in class_probs]
        self.class_probs = torch.stack(cp)  # [C, N]
        self.marginal = (self.pi[:, None] * self.class_probs).sum(0)
        self.worlds = [TinyWorld(p, K, L) for p in cp] + [TinyWorld(self.marginal, K, L)]
        self.vocab = self.worlds[0].vocab
        self.mask_id = self.vocab.mask_id
        self.sequences = self.worlds[0].sequences
        self.null = self.C

    @classmethod
    def random(cls, K, L, C=2, seed=0):
        rng = np.random.default_rng(seed)
        probs = [np.maximum(rng.dirichlet(np.full(K ** L, 0.7)), 1e-3) for _ in range(C)]
        return cls(probs, rng.dirichlet(np.full(C, 3.0)), K, L)

    def denoiser(self, z, t, labels):
        outs = torch.stack([w.denoiser(z) for w in self.worlds])  # [C+1, B, L, K+1]
        return outs[labels, torch.arange(z.shape[0])]

    def conditional_denoiser(self, y):
        return lambda z, t=None: self.worlds[y].denoiser(z)

    def seq_index(self, x):
        return self.worlds[0].seq_index(x)

    # -------------------------------------------------------------- independent enumeration oracles
    def compatible(self, z):
        """[B, N] bool: sequence n agrees with z at every unmasked position."""
        return ((z[:, None, :] == self.mask_id) | (z[:, None, :] == self.sequences[None])).all(-1)

    def token_probs(self, z, probs):
        """[B, L, K]: p(x^l = v | z) under the sequence law ``probs`` [N], by enumeration."""
        w = self.compatible(z).double() * probs[None]
        w = w / w.sum(-1, keepdim=True)
        onehot = torch.nn.functional.one_hot(self.sequences, self.K).double()  # [N, L, K]
        return torch.einsum("bn,nlk->blk", w, onehot)

    def class_log_prob(self, y):
        """log p(y | z) of the exact Bayes classifier, for any z (masks allowed), from a table over all states."""
        if not hasattr(self, "_class_table"):
            states = torch.tensor(list(itertools.product(range(self.K + 1), repeat=self.L)), dtype=torch.long)
            mass = self.compatible(states).double() @ (self.pi[:, None] * self.class_probs).T  # [S, C]
            self._class_table = torch.log(mass / mass.sum(-1, keepdim=True))
        table = self._class_table[:, y]
        return lambda z: table[self.worlds[0].state_index(z)]


@pytest.fixture(scope="module")
def lw():
    return LabelledWorld.random(3, 3, C=2, seed=5)


def all_states(world, min_masked=1):
    states = torch.tensor(list(itertools.product(range(world.K + 1), repeat=world.L)), dtype=torch.long)
    return states[(states == world.mask_id).sum(-1) >= min_masked]


# ------------------------------------------------------------------------------------- formula
@pytest.mark.parametrize("w", [0.0, 0.5, 2.0, 4.0])
def test_cfg_token_law_equals_formula_at_every_state(lw, w):
    z = all_states(lw)
    guided = ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, w)(z, None)
    got = torch.softmax(guided.double(), -1)[..., : lw.K]
    pc, pu = lw.token_probs(z, lw.class_probs[1]), lw.token_probs(z, lw.marginal)
    want = pc ** (1 + w) * pu ** (-w)
    want = want / want.sum(-1, keepdim=True)
    masked = z == lw.mask_id
    assert torch.allclose(got[masked], want[masked], atol=1e-10, rtol=0)
    if w > 0:  # negative control: the conditional law itself differs from the guided one
        assert (pc[masked] - want[masked]).abs().max() > 1e-2


def test_cfg_log_probs_shapes_and_disallowed_tokens():
    vocab = DiffusionVocab.dna()
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 5, 12), (1, 1, 12), (3, 7, 12)]:
        c, u = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        out = cfg_log_probs(c, u, vocab, 1.5)
        assert out.dtype == torch.float64 and out.shape == shape
        allowed = vocab.allowed_mask()
        assert torch.isinf(out[..., ~allowed]).all() and torch.isfinite(out[..., allowed]).all()
        lc, lu = torch.log_softmax(c.double()[..., allowed], -1), torch.log_softmax(u.double()[..., allowed], -1)
        ref = 2.5 * lc - 1.5 * lu
        assert torch.allclose(out[..., allowed], torch.log_softmax(ref, -1), atol=1e-12)
    # a token the unconditional model rules out gets a large but finite weight, never +inf / NaN
    c = torch.zeros(1, 1, 12)
    u = torch.zeros(1, 1, 12)
    u[..., 7] = -float("inf")
    out = cfg_log_probs(c, u, vocab, 3.0)
    assert torch.isfinite(out[..., 7:11]).all() and out[0, 0, 7] > out[0, 0, 8]
    with pytest.raises(ValueError):
        cfg_log_probs(c, u, vocab, -0.5)


def classifier_guided_law(lw, log_p, w, z):
    """Oracle of exact classifier guidance, by enumeration: per position l of the states z (B, L), the law
    x_theta(v | z) * p(y | z with l set to v)^(1 + w) over the K bases, normalised. Returns (B, L, K)."""
    pu = lw.token_probs(z, lw.marginal)
    q = torch.zeros_like(pu)
    for l in range(lw.L):
        for v in range(lw.K):
            cand = z.clone()
            cand[:, l] = v
            q[:, l, v] = pu[:, l, v] * torch.exp(log_p(cand)) ** (1 + w)
    return q / q.sum(-1, keepdim=True)


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_classifier_guidance_token_law_equals_formula(lw, w):
    z = all_states(lw)
    log_p = lw.class_log_prob(0)
    den = lw.conditional_denoiser(lw.null)  # the unconditional model
    cg = ClassifierGuidance(den, lw.vocab, log_p, w, mode="exact", batch_size=17)
    got = torch.softmax(cg(z, None), -1)[..., : lw.K]
    want = classifier_guided_law(lw, log_p, w, z)
    pu = lw.token_probs(z, lw.marginal)
    masked = z == lw.mask_id
    assert torch.allclose(got[masked], want[masked], atol=1e-10, rtol=0)
    assert cg.stats.exact_calls == 1 and cg.stats.first_order_calls == 0
    assert cg.stats.classifier_inputs == int(masked.sum()) * lw.K
    if w == 0:
        # Bayes' rule: the exact classifier at w = 0 turns the unconditional denoiser into the conditional one
        pc = lw.token_probs(z, lw.class_probs[0])
        assert torch.allclose(got[masked], pc[masked], atol=1e-10, rtol=0)
        assert (pu[masked] - pc[masked]).abs().max() > 1e-2  # ... which is not the unconditional one


def test_first_order_is_exact_for_an_affine_classifier_and_not_otherwise(lw):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(lw.L, lw.K + 1, generator=g, dtype=torch.float64)

    def affine(z):  # log p(y | z) affine in the one-hot input (not a normalised classifier; guidance needs no more)
        return a[torch.arange(lw.L), z].sum(-1)

    def affine_onehot(onehot):
        return (onehot * a.to(onehot.dtype)).sum((-1, -2))

    for batch in (1, 4, 16):
        z = all_states(lw)[torch.randperm(len(all_states(lw)), generator=g)[:batch]]
        exact, _ = candidate_log_probs_exact(z, lw.vocab, affine)
        first = candidate_log_probs_first_order(z, lw.vocab, affine_onehot)
        masked = z == lw.mask_id
        assert torch.allclose(first[masked][:, : lw.K], exact[masked][:, : lw.K], atol=1e-5)
    # negative control: the Bayes classifier is not affine in the one-hot input; first order is an approximation
    bayes = lw.class_log_prob(1)
    vocab_size = lw.vocab.size

    def bayes_onehot(onehot):  # the same classifier, read through the one-hot rows (exact on one-hot inputs)
        weights = onehot.double()
        seq = lw.sequences
        lik = torch.ones(onehot.shape[0], seq.shape[0], dtype=torch.float64)
        for l in range(lw.L):
            col = weights[:, l, :]  # [B, V]
            lik = lik * (col[:, seq[:, l]] + col[:, lw.mask_id: lw.mask_id + 1])
        mass = lik @ (lw.pi[:, None] * lw.class_probs).T
        return torch.log(mass[:, 1] / mass.sum(-1)).to(onehot.dtype)

    z = all_states(lw)
    exact, _ = candidate_log_probs_exact(z, lw.vocab, bayes)
    first = candidate_log_probs_first_order(z, lw.vocab, bayes_onehot)
    onehot_z = torch.nn.functional.one_hot(z, vocab_size).float()
    assert torch.allclose(bayes_onehot(onehot_z).double(), bayes(z), atol=1e-5)  # same classifier on one-hot
    masked = z == lw.mask_id
    assert (first[masked][:, : lw.K] - exact[masked][:, : lw.K]).abs().max() > 1e-2


def test_auto_mode_switches_to_first_order_and_counts(lw):
    a = torch.randn(lw.L, lw.K + 1, generator=gen(1), dtype=torch.float64)
    lp = lambda z: a[torch.arange(lw.L), z].sum(-1)
    lp1 = lambda oh: (oh * a.to(oh.dtype)).sum((-1, -2))
    den = lw.conditional_denoiser(lw.null)
    z = torch.full((4, lw.L), lw.mask_id)
    cg = ClassifierGuidance(den, lw.vocab, lp, 1.0, mode="auto", onehot_log_prob=lp1, max_exact_candidates=12)
    cg(z[:1], None)  # 3 masked x 3 tokens = 9 candidates: exact
    cg(z, None)  # 36 candidates: first order
    assert cg.stats.as_dict() == {"exact_calls": 1, "first_order_calls": 1, "classifier_inputs": 9 + 4}
    with pytest.raises(ValueError):
        ClassifierGuidance(den, lw.vocab, lp, 1.0, mode="first_order")
    with pytest.raises(ValueError):
        ClassifierGuidance(den, lw.vocab, lp, 1.0, mode="nearest")


# ------------------------------------------------------------------------------- bit identity
@pytest.mark.parametrize("method", ["ancestral", "cached", "first_hitting"])
def test_cfg_w0_is_the_conditional_sampler_bit_for_bit(lw, method):
    sampler = make_sampler(method, lw.vocab, num_steps=32)
    cond = sampler.sample(lw.conditional_denoiser(1), 64, lw.L, generator=gen(7))
    guided = sampler.sample(ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, 0.0), 64, lw.L, generator=gen(7))
    assert torch.equal(cond.tokens, guided.tokens)
    assert cond.num_denoiser_calls == guided.num_denoiser_calls
    other = sampler.sample(ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, 3.0), 64, lw.L, generator=gen(7))
    assert not torch.equal(cond.tokens, other.tokens)  # the comparison has power


def test_cfg_w0_bit_identical_with_a_conditional_network():
    """The same with a real float32 network (a tiny class-conditional Caduceus-PS)."""
    torch.manual_seed(0)
    model = build_model("caduceus", d_model=16, n_layer=1, rcps=True, num_classes=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    vocab = DiffusionVocab.dna()

    def labelled(x, t, labels):
        with torch.no_grad():
            return model(x, label=labels)[..., : vocab.size]

    cond = lambda x, t: labelled(x, t, torch.zeros(x.shape[0], dtype=torch.long))
    for method in ("ancestral", "cached", "first_hitting"):
        sampler = make_sampler(method, vocab, num_steps=16)
        a = sampler.sample(cond, 3, 24, generator=gen(2))
        b = sampler.sample(ClassifierFreeGuidance(labelled, vocab, 0, 2, 0.0), 3, 24, generator=gen(2))
        assert torch.equal(a.tokens, b.tokens)


# ------------------------------------------------------------------------------- exact sampling
def test_cfg_w0_samples_the_conditional_distribution_exactly(lw):
    guided = ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, 0.0)
    out = first_hitting_sample(guided, lw.vocab, N, lw.L, generator=gen(11))
    assert chi2_pvalue(lw.seq_index(out.tokens), lw.class_probs[1]) > ALPHA
    # negative controls: guided (w = 1) and unconditional samples are not p(x | y)
    strong = first_hitting_sample(ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, 1.0), lw.vocab, N, lw.L,
                                  generator=gen(12))
    assert chi2_pvalue(lw.seq_index(strong.tokens), lw.class_probs[1]) < 1e-8
    uncond = first_hitting_sample(lw.conditional_denoiser(lw.null), lw.vocab, N, lw.L, generator=gen(13))
    assert chi2_pvalue(lw.seq_index(uncond.tokens), lw.class_probs[1]) < 1e-8


def test_classifier_guidance_w0_with_bayes_classifier_samples_the_conditional(lw):
    cg = ClassifierGuidance(lw.conditional_denoiser(lw.null), lw.vocab, lw.class_log_prob(0), 0.0, mode="exact",
                            batch_size=4096)
    out = first_hitting_sample(cg, lw.vocab, N, lw.L, generator=gen(14))
    assert chi2_pvalue(lw.seq_index(out.tokens), lw.class_probs[0]) > ALPHA
    assert chi2_pvalue(lw.seq_index(out.tokens), lw.marginal) < 1e-8  # power: not the unconditional law


def _two_step_chain(lw, z0, token_law, m1, mh):
    """Exact law of the final sequence after the ancestral sampler's two steps t = 1 -> 1/2 -> 0 from ``z0``:
    each masked position unmasks in step 1 w.p. (m(1) - m(1/2)) / m(1), to a token drawn from
    ``token_law(z)`` [L, K] of the current state; step 2 reveals the rest. Enumerates every middle state."""
    p_unmask = (m1 - mh) / m1
    masked = [l for l in range(lw.L) if int(z0[l]) == lw.mask_id]
    law1 = token_law(z0[None])[0]
    final = torch.zeros(lw.K ** lw.L, dtype=torch.float64)
    for choice in itertools.product(range(lw.K + 1), repeat=len(masked)):  # K = stays masked
        z1 = z0.clone()
        prob = 1.0
        for l, c in zip(masked, choice):
            if c == lw.K:
                prob *= 1 - p_unmask
            else:
                prob *= p_unmask * float(law1[l, c])
                z1[l] = c
        rest = [l for l in masked if int(z1[l]) == lw.mask_id]
        law2 = token_law(z1[None])[0]
        for fill in itertools.product(range(lw.K), repeat=len(rest)):
            x = z1.clone()
            q = prob
            for l, v in zip(rest, fill):
                x[l] = v
                q *= float(law2[l, v])
            final[int(lw.seq_index(x))] += q
    return final


@pytest.mark.parametrize("kind", ["cfg", "classifier"])
def test_guided_ancestral_steps_match_enumeration(lw, kind):
    """Two guided reverse steps of the ancestral sampler (t = 1 -> 1/2 -> 0) from a partly known state: the
    sample law equals the chain the formula defines, enumerated over every intermediate state (chi-square)."""
    w = 2.0
    z0 = torch.tensor([lw.mask_id, 1, lw.mask_id])
    if kind == "cfg":
        den = ClassifierFreeGuidance(lw.denoiser, lw.vocab, 1, lw.null, w)

        def law(z):
            pc, pu = lw.token_probs(z, lw.class_probs[1]), lw.token_probs(z, lw.marginal)
            q = pc ** (1 + w) * pu ** (-w)
            return q / q.sum(-1, keepdim=True)
    else:
        log_p = lw.class_log_prob(0)
        den = ClassifierGuidance(lw.conditional_denoiser(lw.null), lw.vocab, log_p, w, mode="exact")

        def law(z):
            return classifier_guided_law(lw, log_p, w, z)
    sched = make_schedule("loglinear")
    m = sched.mask_prob(torch.tensor([1.0, 0.5], dtype=torch.float64))
    want = _two_step_chain(lw, z0, law, float(m[0]), float(m[1]))
    out = ancestral_sample(den, lw.vocab, x_init=z0.expand(N, -1).clone(), schedule=sched, num_steps=2,
                           generator=gen(21))
    assert (out.tokens[:, 1] == 1).all()
    assert chi2_pvalue(lw.seq_index(out.tokens), want) > ALPHA
    # negative control: the unguided conditional chain is a different law and is rejected
    unguided = _two_step_chain(lw, z0, lambda z: lw.token_probs(z, lw.class_probs[1 if kind == "cfg" else 0]),
                               float(m[0]), float(m[1]))
    assert chi2_pvalue(lw.seq_index(out.tokens), unguided) < 1e-8


# ------------------------------------------------------------------------------- planted motif
def _motif_world():
    """DNA-like world (K = 4, L = 5): class 1 plants the motif 0-1-2 (x20 weight), class 0 avoids it (x0.3)."""
    K, L = 4, 5
    seqs = torch.tensor(list(itertools.product(range(K), repeat=L)))
    has = torch.zeros(len(seqs), dtype=torch.bool)
    for s in range(L - 2):
        has |= (seqs[:, s] == 0) & (seqs[:, s + 1] == 1) & (seqs[:, s + 2] == 2)
    base = torch.tensor(np.random.default_rng(0).dirichlet(np.full(K ** L, 5.0)))
    p1 = base * torch.where(has, 20.0, 1.0)
    p0 = base * torch.where(has, 0.3, 1.0)
    return LabelledWorld([p0, p1], [0.5, 0.5], K, L), has


def _rates_increase(rates, n):
    """Each rate above the previous by > 3 standard errors of the difference (two-proportion z test)."""
    for a, b in zip(rates, rates[1:]):
        se = np.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        if not b - a > 3 * se:
            return False
    return True


def test_planted_motif_rate_rises_with_w():
    world, has = _motif_world()
    n = 3000
    exact_rate = float((world.class_probs[1] * has).sum())
    rates = {"cfg": [], "classifier": []}
    for i, w in enumerate([0.0, 1.0, 2.0, 4.0]):
        cfg = ClassifierFreeGuidance(world.denoiser, world.vocab, 1, world.null, w)
        out = first_hitting_sample(cfg, world.vocab, n, world.L, generator=gen(30 + i))
        rates["cfg"].append(float(has[world.seq_index(out.tokens)].double().mean()))
        cg = ClassifierGuidance(world.conditional_denoiser(world.null), world.vocab, world.class_log_prob(1), w,
                                mode="exact", batch_size=8192)
        out = first_hitting_sample(cg, world.vocab, n, world.L, generator=gen(40 + i))
        rates["classifier"].append(float(has[world.seq_index(out.tokens)].double().mean()))
    for kind, r in rates.items():
        assert abs(r[0] - exact_rate) < 4 * np.sqrt(exact_rate * (1 - exact_rate) / n), (kind, r, exact_rate)
        assert _rates_increase(r, n), (kind, r)
    # negative control: the unconditional model's rate is far below, and a flat sequence of rates fails the check
    assert _rates_increase([rates["cfg"][0]] * 4, n) is False
    uncond = first_hitting_sample(world.conditional_denoiser(world.null), world.vocab, n, world.L, generator=gen(50))
    assert float(has[world.seq_index(uncond.tokens)].double().mean()) < rates["cfg"][0] - 0.05


def test_nan_from_the_classifier_stops_sampling(lw):
    def bad(z):
        return torch.full((z.shape[0],), float("nan"), dtype=torch.float64)

    cg = ClassifierGuidance(lw.conditional_denoiser(lw.null), lw.vocab, bad, 1.0, mode="exact")
    with pytest.raises(NonFiniteError):
        first_hitting_sample(cg, lw.vocab, 4, lw.L, generator=gen(0))


# ------------------------------------------------------------------------------- label dropout
def test_label_dropout_rate_null_id_and_determinism():
    labels = torch.randint(0, 3, (50000,), generator=gen(0))
    out = drop_labels(labels, 3, 0.1, gen(1))
    dropped = out == 3
    assert torch.equal(out[~dropped], labels[~dropped])  # kept labels unchanged
    assert binomtest(int(dropped.sum()), labels.numel(), 0.1).pvalue > ALPHA
    assert binomtest(int(dropped.sum()), labels.numel(), 0.12).pvalue < 1e-8  # the test tells 10% from 12%
    assert torch.equal(out, drop_labels(labels, 3, 0.1, gen(1)))  # a pure function of the generator
    assert torch.equal(drop_labels(labels, 3, 0.0, gen(1)), labels)
    assert (drop_labels(labels, 3, 1.0, gen(1)) == 3).all()
    with pytest.raises(ValueError):
        drop_labels(labels, 3, 1.5)
