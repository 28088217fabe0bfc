"""Templates, infilling and semi-autoregressive filling: every known base is kept, masks are all filled."""

from __future__ import annotations

import pytest
import torch

from conftest import random_dna, write_fasta_text
from fakes import hashed_denoiser
from genodiff.data import vocab as V
from genodiff.data.genome import Genome
from genodiff.diffusion.sampling import Sampler
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError
from genodiff.generate import conditioning as C


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


def test_semi_autoregressive_long_sequence_is_reproducible():
    x = torch.full((2, 100), V.MASK_ID)
    a = C.fill(_window_fn("cached"), x, V.MASK_ID, 32, 16, torch.Generator().manual_seed(5))[0]
    b = C.fill(_window_fn("cached"), x, V.MASK_ID, 32, 16, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, b)
    assert not bool((a == V.MASK_ID).any())


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
