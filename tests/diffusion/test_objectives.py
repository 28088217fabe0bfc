"""Objective interface: padding, gradients, time sampling, dtypes, factories."""

import math

import pytest
import torch

from genodiff.diffusion import objectives as O
from genodiff.diffusion.process import mask_tokens, stratified_times, subs_log_probs
from genodiff.diffusion.schedules import make_schedule
from genodiff.diffusion.testing import TinyWorld
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.data.genome import vocab as dv

from _helpers import quadrature_nelbo, random_denoiser


def dna_batch(B=4, L=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(7, 11, (B, L), generator=g)
    am = torch.ones(B, L, dtype=torch.long)
    am[1, 20:] = 0
    x[1, 20:] = dv.PAD_ID
    x[2, 5] = dv.N_ID  # N: carried as context, never scored
    return x, am


class Recorder:
    def __init__(self, V=12, L=32, dtype=torch.float32):
        self.logits = torch.nn.Parameter(torch.randn(4, L, V, dtype=dtype))
        self.inputs = []

    def __call__(self, z, t=None):
        self.inputs.append((z.clone(), t))
        return self.logits[: z.shape[0], : z.shape[1]]


@pytest.mark.parametrize("name", ["mdlm", "sedd", "d3pm", "mdlm_discrete"])
def test_padding_never_noised_nor_scored_and_gradients_only_at_masks(name):
    vocab = DiffusionVocab.dna()
    spec = {"name": "d3pm", "carry_over": True, "zero_masking": True} if name == "d3pm" else (
        {"name": "mdlm", "time": "discrete"} if name == "mdlm_discrete" else name)
    obj = O.make_objective(spec, vocab)
    x, am = dna_batch()
    rec = Recorder()
    t = torch.full((4,), 0.6)
    if name in ("d3pm", "mdlm_discrete"):
        t = torch.full((4,), 0.6)  # on the T=1000 grid
    out = obj.loss(x, am, t, denoiser=rec, generator=torch.Generator().manual_seed(0))
    z = rec.inputs[0][0]
    masked = z == vocab.mask_id
    assert masked.any() and (~masked).any()
    scorable = (am.bool()) & torch.isin(x, torch.tensor([7, 8, 9, 10]))
    assert not masked[~scorable].any()  # padding and N never noised
    assert torch.equal(z[~masked], x[~masked])
    assert torch.equal(out.num_tokens, scorable.sum(-1))
    assert torch.equal(out.num_masked, masked.sum(-1))
    assert (out.per_token[~masked] == 0).all()
    torch.testing.assert_close(out.nelbo_per_seq, out.per_token.sum(-1))
    torch.testing.assert_close(out.loss, out.nelbo_per_seq.sum() / out.num_tokens.sum())
    out.loss.backward()
    g = rec.logits.grad.abs().sum(-1)  # [B, L]
    assert (g[~masked] == 0).all()
    assert (g[masked] > 0).all()
    assert torch.isfinite(out.nelbo_per_seq).all()


def test_subs_parameterization():
    vocab = DiffusionVocab.dna()
    logits = torch.randn(2, 5, 12).half()
    logits[..., 3] = 60000.0  # huge mass on [MASK] in fp16: must be removed, not overflow
    x_t = torch.tensor([[3, 7, 3, 10, 4], [3, 3, 3, 3, 8]])
    lp = subs_log_probs(logits, x_t, vocab)
    assert lp.dtype == torch.float32
    p = lp.exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 5))
    assert (p[..., [0, 1, 2, 3, 4, 5, 6, 11]][x_t == 3] == 0).all()
    assert (p[0, 1, 7] == 1) and (p[0, 4, 4] == 1)  # carry-over (even for a pad token)


def test_mask_tokens_rate():
    vocab = DiffusionVocab.generic(5)
    sched = make_schedule("cosine")
    x = torch.randint(0, 5, (4000, 50), generator=torch.Generator().manual_seed(0))
    t = torch.rand(4000, generator=torch.Generator().manual_seed(1))
    _, masked = mask_tokens(x, t, sched, vocab, generator=torch.Generator().manual_seed(2))
    # E[#masked] = 50 * (1 - alpha_t): compare totals (binomial sd ~ sqrt(sum var))
    expected = 50 * sched.mask_prob(t.double())
    var = (50 * sched.mask_prob(t.double()) * sched.alpha(t.double())).sum()
    z = (masked.sum() - expected.sum()) / var.sqrt()
    assert abs(float(z)) < 4


def test_stratified_times_over_global_batch():
    G, b = 24, 4
    gens = [torch.Generator().manual_seed(s) for s in range(G // b)]
    ts = torch.cat([stratified_times(b, G, off * b, generator=gens[off], dtype=torch.float64) for off in range(G // b)])
    strata = torch.floor(ts * G).long()
    assert torch.equal(strata, torch.arange(G))
    # marginal uniformity of one micro-batch's times averaged over offsets: KS-like check on many draws
    g = torch.Generator().manual_seed(0)
    many = torch.cat([stratified_times(b, G, (i % (G // b)) * b, generator=g, dtype=torch.float64) for i in range(6000)])
    hist = torch.histc(many, bins=10, min=0, max=1)
    assert (hist / many.numel() - 0.1).abs().max() < 0.01
    with pytest.raises(ValueError):
        stratified_times(4, 8, 6)


def test_sample_t_and_sampling_eps():
    obj = O.MDLMObjective(sampling_eps=0.05)
    t = obj.sample_t(1000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0.05 and t.max() < 1
    # antithetic: one per stratum of [eps, 1)
    strata = torch.floor((t - 0.05) / 0.95 * 1000).long()
    assert torch.equal(strata, torch.arange(1000))
    objd = O.MDLMObjective(time="discrete", num_timesteps=10)
    td = objd.sample_t(100, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(td * 10, torch.round(td * 10)) and td.min() >= 0.1 and td.max() <= 1.0
    tg = obj.sample_t(4, global_batch_size=16, offset=8, generator=torch.Generator().manual_seed(0))
    u = (tg - 0.05) / 0.95
    assert ((u >= 0.5) & (u < 0.75)).all()


def test_training_path_single_sample_is_unbiased():
    """loss(x0) with sampled t and z (sampling_eps=0) averages to the exact quadrature NELBO."""
    world = TinyWorld.random(3, 3, seed=31)
    den = random_denoiser(world, 0)
    sched = {"name": "loglinear", "eps": 0.0}
    obj = O.MDLMObjective(vocab=world.vocab, schedule=sched, sampling_eps=0.0)
    exact = quadrature_nelbo(obj, den, world, n=8)  # [27]
    x = world.sequences.repeat(2000, 1)
    vals = obj.loss(x, denoiser=den, generator=torch.Generator().manual_seed(0)).nelbo_per_seq.double().reshape(2000, 27)
    mean, se = vals.mean(0), vals.std(0) / math.sqrt(2000)
    z = (mean - exact) / se
    assert z.abs().max() < 4.0
    # pooled over all sequences: a 3-sigma check
    assert abs(float((mean - exact).sum() / se.pow(2).sum().sqrt())) < 3.0
    # a biased variant (weight w(t) replaced by 1) is detected by the same check
    class NoWeight(O.MDLMObjective):
        def weight(self, t):
            return torch.ones_like(t)
    bad = NoWeight(vocab=world.vocab, schedule=sched, sampling_eps=0.0)
    vb = bad.loss(x, denoiser=den, generator=torch.Generator().manual_seed(0)).nelbo_per_seq.double().reshape(2000, 27)
    assert abs(float((vb.mean(0) - exact).sum() / (vb.std(0) / math.sqrt(2000)).pow(2).sum().sqrt())) > 10


def test_ar_objective_shapes_and_bos():
    vocab = DiffusionVocab.dna()
    x, am = dna_batch()
    rec = Recorder()
    out = O.ARObjective(vocab=vocab).loss(x, am, denoiser=rec)
    inp = rec.inputs[0][0]
    assert (inp[:, 0] == vocab.mask_id).all() and torch.equal(inp[:, 1:], x[:, :-1]) and rec.inputs[0][1] is None
    assert torch.equal(out.num_tokens, (am.bool() & torch.isin(x, torch.tensor([7, 8, 9, 10]))).sum(-1))
    out = O.ARObjective({"bos_id": dv.BOS_ID}, vocab).loss(x, am, denoiser=rec)
    assert (rec.inputs[-1][0][:, 0] == dv.BOS_ID).all()


def test_factories_and_configs():
    obj = O.make_objective({"name": "mdlm", "schedule": {"name": "cosine", "eps": 0.0}, "time": "discrete", "num_timesteps": 50})
    assert obj.schedule.name == "cosine" and obj.config.num_timesteps == 50
    assert obj.vocab == DiffusionVocab.dna() and not obj.config.time_conditioning
    assert isinstance(O.make_objective("sedd"), O.SEDDObjective)
    assert isinstance(O.make_objective("ar"), O.ARObjective)
    assert O.make_objective("d3pm", zero_masking=True).config.zero_masking
    with pytest.raises(ValueError):
        O.make_objective({"name": "mdlm", "bogus": 1})
    with pytest.raises(ValueError):
        O.make_objective("nope")
    with pytest.raises(ValueError):
        O.MDLMObjective().loss(torch.zeros(1, 3, dtype=torch.long) + 7)  # no denoiser
    obj = O.MDLMObjective(O.MDLMConfig(sampling_eps=0.01), denoiser=lambda z, t: torch.zeros(*z.shape, 12))
    out = obj(torch.full((2, 8), 7))
    assert out.nelbo_per_seq.shape == (2,) and out.t.shape == (2,)
    # zero logits over 4 DNA tokens: every masked token costs log 4 nats before weighting
    torch.testing.assert_close(out.token_nll_sum, out.num_masked * math.log(4.0))


def test_vocab():
    v = DiffusionVocab.dna()
    assert v.size == 12 and v.mask_id == 3 and v.allowed_output_ids == (7, 8, 9, 10) and v.pad_id == 4
    assert DiffusionVocab.dna(include_n=True).allowed_output_ids[-1] == 11
    g = DiffusionVocab.generic(5)
    assert g.size == 6 and g.mask_id == 5 and g.allowed_output_ids == (0, 1, 2, 3, 4)
    g = DiffusionVocab.generic(5, pad_id=-1)
    assert g.size == 7 and g.pad_id == 6 and 6 not in g.allowed_output_ids
    with pytest.raises(ValueError):
        DiffusionVocab(5, 1, (0, 1))


def test_t_zero_is_finite_with_finite_gradients():
    vocab = DiffusionVocab.dna()
    x, am = dna_batch()
    for name in ("mdlm", "sedd"):
        rec = Recorder()
        obj = O.make_objective({"name": name, "sampling_eps": 0.0}, vocab)
        out = obj.loss(x, am, torch.tensor([0.0, 0.5, 0.0, 1.0]), denoiser=rec)
        assert out.nelbo_per_seq[0] == 0 and out.nelbo_per_seq[2] == 0
        out.loss.backward()
        assert torch.isfinite(rec.logits.grad).all() and torch.isfinite(out.loss)


def test_half_precision_logits_loss():
    vocab = DiffusionVocab.dna()
    x, am = dna_batch()
    logits = torch.randn(4, 32, 12).to(torch.bfloat16)
    logits[..., 3] = 1e4
    out = O.MDLMObjective().loss(x, am, torch.full((4,), 0.5), denoiser=lambda z, t: logits)
    assert out.nelbo_per_seq.dtype == torch.float32 and torch.isfinite(out.nelbo_per_seq).all()
