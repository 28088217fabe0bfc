"""Templates, infilling and semi-autoregressive filling: every known base is kept, masks are all filled."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from gen_helpers import random_dna, write_fasta_text
from fakes import hashed_denoiser
from genodiff.data.genome import vocab as V
from genodiff.data.genome.reference import Genome
from genodiff.diffusion.sampling import SampleOutput, Sampler, first_hitting_sample
from genodiff.diffusion.testing import TinyWorld
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError
from genodiff.generate import conditioning as C
from genodiff.generate.text import fill_after_prefix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diffusion"))
from _helpers import chi2_pvalue  # noqa: E402  (tests/diffusion/_helpers.py)


def _window_fn(method, steps=16):
    sampler = Sampler({"method": method, "num_steps": steps}, DiffusionVocab.dna())
    return lambda x_init, generator: sampler.sample(hashed_denoiser, x_init=x_init, generator=generator)


def test_parse_region_and_templates():
    assert C.parse_region("chr2:1,000-2,000") == ("chr2", 1000, 2000)
    for bad in ("chr2:2000-1000", "chr2", "chr2:a-b"):
        with pytest.raises(InputError):
            C.parse_region(bad)
    t = C.template_from_string("t", "ACGNN?T")
    assert t.infill_runs() == [(3, 6)]
    assert C.decode(torch.as_tensor(t.tokens[:3])) == "ACG"
    ps = C.prefix_suffix_template("p", 10, "AC", "GT")
    assert ps.infill_runs() == [(2, 8)]
    with pytest.raises(InputError):
        C.prefix_suffix_template("p", 3, "AC", "GT")


@pytest.mark.parametrize("method", ["ancestral", "cached", "first_hitting"])
@pytest.mark.parametrize("block", [None, 24])
def test_infilling_keeps_every_known_base(method, block):
    seq = random_dna(60, 3)
    tpl = C.template_from_string("t", seq[:10] + "N" * 15 + seq[25:40] + "?" * 12 + seq[52:])
    x = torch.as_tensor(tpl.tokens).expand(3, -1).clone()
    g = torch.Generator().manual_seed(0)
    out, calls, _ = C.fill(_window_fn(method), x, V.MASK_ID, block, 8 if block else None, g)
    known = ~torch.as_tensor(tpl.generate_mask)
    assert torch.equal(out[:, known], x[:, known])
    assert bool(((out >= V.A_ID) & (out <= V.T_ID)).all())  # everything filled with A/C/G/T
    assert calls > 0


@pytest.mark.parametrize("block,stride", [(None, None), (24, 8), (24, None), (20, 20), (100, 7)])
def test_masked_per_window_is_what_fill_samples(block, stride):
    """The window plan behind the progress bar's estimate: one entry per sample_window call of fill, with the
    window's width and its masked positions at that moment; a template with a fully known stretch skips windows."""
    seq = random_dna(70, 5)
    tpl = C.template_from_string("t", "N" * 12 + seq[12:45] + "?" * 9 + seq[54:66] + "NNNN")
    seen = []

    def window(x_init, generator):
        seen.append((x_init.shape[1], int((x_init[0] == V.MASK_ID).sum())))
        return _window_fn("first_hitting")(x_init, generator)

    C.fill(window, torch.as_tensor(tpl.tokens).expand(2, -1).clone(), V.MASK_ID, block, stride,
           torch.Generator().manual_seed(0))
    assert C.masked_per_window(tpl.generate_mask, block, stride) == seen
    assert sum(m for _, m in seen) == int(tpl.generate_mask.sum())
    if block == 24 and stride == 8:
        assert len(seen) < len(C.window_spans(70, 24, 8))  # windows with nothing to generate are skipped


def test_semi_autoregressive_long_sequence_is_reproducible():
    x = torch.full((2, 100), V.MASK_ID)
    a = C.fill(_window_fn("cached"), x, V.MASK_ID, 32, 16, torch.Generator().manual_seed(5))[0]
    b = C.fill(_window_fn("cached"), x, V.MASK_ID, 32, 16, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, b)
    assert not bool((a == V.MASK_ID).any())


def test_semi_autoregressive_windows_follow_the_model_law():
    """Windows of L=3 with stride 1 on the exact tiny world: (x0,x1,x2) ~ p and (x1,x2,x3) ~ p(x1,x2)
    p(x3 | x1,x2 at window start) -- the law of semi-autoregressive generation, DNA and text alike."""
    world, n = TinyWorld.random(3, 3, seed=21), 20000
    window = functools.partial(first_hitting_sample, world.denoiser, world.vocab)
    x = torch.full((n, 5), world.mask_id)
    tokens, calls, _ = C.fill(window, x, world.mask_id, 3, 1, torch.Generator().manual_seed(8))
    assert tokens.shape == (n, 5) and (tokens != world.mask_id).all()
    assert calls == 3 + 1 + 1
    assert chi2_pvalue(world.seq_index(tokens[:, :3]), world.probs) > 1e-3
    p = world.probs.reshape(3, 3, 3)
    cond = p / p.sum(-1, keepdim=True)  # p(x2 | x0, x1) indexed [x0, x1, x2]
    expected = (p.sum(0)[:, :, None] * cond).reshape(-1)
    assert chi2_pvalue(world.seq_index(tokens[:, 1:4]), expected) > 1e-3
    assert chi2_pvalue(world.seq_index(tokens[:, 1:4]), world.probs) < 1e-6  # it is not p itself (power check)
    # a prompt and the Sampler front end, as genodiff sample text runs them
    s = Sampler({"method": "cached", "num_steps": 50}, world.vocab)
    x = torch.full((4, 10), world.mask_id)
    x[:, :2] = torch.tensor([2, 1])
    g, _, _ = fill_after_prefix(lambda x_init, generator: s.sample(world.denoiser, x_init=x_init, generator=generator),
                                x, 2, world.mask_id, 3, 2, torch.Generator().manual_seed(9))
    assert g.shape == (4, 10) and (g[:, :2] == torch.tensor([2, 1])).all()
    assert (g != world.mask_id).all()


def test_a_prompt_longer_than_the_window_is_context_for_the_next_stride():
    seen = []

    def window(x_init, generator):
        seen.append((int((x_init == V.MASK_ID).sum(1)[0]), x_init.shape[1]))
        return SampleOutput(torch.where(x_init == V.MASK_ID, torch.full_like(x_init, V.A_ID), x_init), 1, 1)

    x = torch.full((2, 20), V.MASK_ID)
    x[:, :9] = V.C_ID
    tokens, calls, _ = fill_after_prefix(window, x, 9, V.MASK_ID, 6, 4, torch.Generator())
    assert seen == [(4, 6), (4, 6), (3, 6)]  # windows end 4 past the prompt, then every 4 (the last: at 20)
    assert calls == 3 and bool((tokens[:, :9] == V.C_ID).all()) and bool((tokens[:, 9:] == V.A_ID).all())
    seen.clear()
    C.fill(window, x, V.MASK_ID, 6, 4, torch.Generator())  # fill alone: windows on the grid 6, 10, 14, ...
    assert seen == [(1, 6), (4, 6), (4, 6), (2, 6)]
    seen.clear()
    short = x[:, 3:11].clone()  # 6 known, 2 to generate
    fill_after_prefix(window, short, 6, V.MASK_ID, 32, 40, torch.Generator())  # one window: the stride is unused
    assert seen == [(2, 8)]


def test_region_template_and_bounds(tmp_path):
    g = Genome(write_fasta_text(tmp_path / "g.fa", {"chr1": random_dna(500, 4)}))
    t = C.region_template(g, "chr1", 100, 150, 30)
    assert t.origin == {"chrom": "chr1", "start": 70, "end": 180}
    assert t.infill_runs() == [(30, 80)]
    assert C.decode(torch.as_tensor(t.tokens[:30])) == g.fetch("chr1", 70, 100)
    edge = C.region_template(g, "chr1", 480, 500, 30)
    assert edge.origin["end"] == 500
    with pytest.raises(InputError, match="outside"):
        C.region_template(g, "chr1", 480, 501, 30)
    with pytest.raises(InputError, match="unknown contig"):
        C.region_template(g, "chrX", 1, 2, 30)


def test_gc_helpers():
    tok = torch.tensor([[V.G_ID, V.C_ID, V.A_ID, V.T_ID], [V.G_ID, V.G_ID, V.N_ID, V.N_ID]])
    gc = C.gc_fraction(tok)
    assert gc.tolist() == [0.5, 1.0]
    assert C.gc_accept(gc, 0.5, 0.01).tolist() == [True, False]
