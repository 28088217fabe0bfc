"""Indel variant effects: allele normalisation, equal-length centred windows (hand-computed coordinates),
the common-random-number key map, and effect signs under an exact planted-motif world (with negative
controls). Window geometry is documented in genodiff/generate/variants.py and docs/generate.md."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch
from gen_helpers import random_dna, write_fasta_text
from motif_world import count, exact_llr, motif_denoiser, motif_model, neg_log_p

from genodiff.data.genome import vocab as V
from genodiff.data.genome.reference import Genome
from genodiff.generate.conditioning import encode
from genodiff.generate.scoring import make_draws, nelbo_with_draws
from genodiff.generate.variants import (
    Change,
    Variant,
    allele_windows,
    alt_key_index,
    normalize_change,
    score_variants,
    variant_windows,
)

# ----------------------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("pos, ref, alt, change, kind", [
    (10, "C", "T", (9, 10, "T"), "snv"),
    (10, "CA", "TG", (9, 11, "TG"), "mnv"),
    (10, "C", "CAG", (10, 10, "AG"), "ins"),          # VCF anchor base C removed
    (10, "CAG", "C", (10, 12, ""), "del"),
    (10, "CA", "GTT", (9, 11, "GTT"), "complex"),     # no shared first base
    (10, "ACGT", "ACT", (11, 12, ""), "del"),         # prefix AC, then suffix T trimmed
    (10, "AC", "AT", (10, 11, "T"), "snv"),           # padded SNV
    (1, "A", "TA", (0, 0, "T"), "ins"),               # POS=1: VCF anchors on the base after
    (10, "CATG", "CTTG", (10, 11, "T"), "snv"),
    (10, "AAA", "AA", (11, 12, ""), "del"),           # homopolymer: not left-aligned (prefix first)
])
def test_normalize_change(pos, ref, alt, change, kind):
    c = normalize_change(pos, ref, alt)
    assert (c.start, c.end, c.inserted) == change and c.kind == kind


# ----------------------------------------------------------------------------------------------- windows

N = 100


@pytest.mark.parametrize("name, pos, ref_len, alt, window, ref_w, alt_w", [
    # n = 100, W = 10.  ref_start = s - (W - r)//2, alt_start = s - (W - a)//2, clamped; alt_end = alt_start+W-a+r
    ("snv", 51, 1, "T", 10, (46, 56), (46, 56)),                 # s=50 r=1: 50-4
    ("ins", 51, 1, "+AG", 10, (46, 56), (47, 55)),                # s=51 r=0 a=2: 51-5 / 51-4, 47+8
    ("del", 51, 4, "-", 10, (48, 58), (46, 59)),                  # s=51 r=3 a=0: 51-3 / 51-5, 46+13
    ("mnv", 51, 2, "TG", 10, (46, 56), (46, 56)),                 # s=50 r=2: 50-4
    ("complex", 51, 2, "GTT", 10, (46, 56), (47, 56)),            # s=50 r=2 a=3: 50-4 / 50-3, 47+9
    ("snv_start", 3, 1, "T", 10, (0, 10), (0, 10)),               # 2-4 < 0 -> 0
    ("del_start", 1, 2, "-", 10, (0, 10), (0, 11)),               # s=1 r=1: max(0, ..)
    ("ins_start", 1, 1, "T+", 10, (0, 10), (0, 9)),               # POS=1 A>TA: s=0 a=1
    ("ins_end", 100, 1, "+TT", 10, (90, 100), (92, 100)),         # s=100: min(95, 90) / min(96, 92)
    ("del_end", 97, 4, "-", 10, (90, 100), (87, 100)),            # s=97 r=3: min(94, 90) / min(92, 87)
    ("odd_window", 51, 1, "+A", 7, (48, 55), (48, 54)),           # s=51 r=0 a=1: 51-7//2 / 51-6//2, 48+6
])
def test_windows_hand_computed(tmp_path, name, pos, ref_len, alt, window, ref_w, alt_w):
    """Hand-computed coordinates; the ref window is the genome slice; the alt window is the same-coordinate
    slice of the haplotype made by applying the *untrimmed* VCF record to the genome string."""
    seq = list(random_dna(N, 7))
    seq[2], seq[50:52] = "C", "CA"  # so the literal ALTs above share no base with REF
    seq = "".join(seq)
    fa = write_fasta_text(tmp_path / "g.fa", {"c": seq})
    p0 = pos - 1
    ref = seq[p0:p0 + ref_len]
    # "+XY": anchor base then inserted XY; "X+": X before the anchor (POS=1); "-": anchor only; else literal ALT
    alt_allele = ref[0] + alt[1:] if alt.startswith("+") else alt[:-1] + ref if alt.endswith("+") else \
        ref[0] if alt == "-" else alt
    v = Variant("c", pos, ref, alt_allele)
    ref_seq, alt_seq, index = variant_windows(v, Genome(fa), window)
    assert not v.error and v.windows.ref == ref_w and v.windows.alt == alt_w
    W = ref_w[1] - ref_w[0]
    assert len(ref_seq) == len(alt_seq) == W == v.windows.length
    assert ref_seq == seq[ref_w[0]:ref_w[1]]
    haplotype = seq[:p0] + alt_allele + seq[p0 + ref_len:]
    assert alt_seq == haplotype[alt_w[0]:alt_w[0] + W]
    c = v.change
    assert alt_seq == seq[alt_w[0]:c.start] + c.inserted + seq[c.end:alt_w[1]]
    assert sorted(index.tolist()) == list(range(W))
    # centred: the change sits in the middle of each window unless a contig end pushed it
    r, a = c.end - c.start, len(c.inserted)
    if not name.endswith(("start", "end")):
        assert c.start - ref_w[0] == (W - r) // 2 and c.start - alt_w[0] == (W - a) // 2


def test_window_errors_and_short_contigs():
    assert allele_windows(Change(2, 3, ""), 6, 10).length == 5          # W = min(10, 6, 5)
    assert allele_windows(Change(2, 2, "AAAA"), 6, 10).length == 6
    with pytest.raises(ValueError, match="longer than"):
        allele_windows(Change(10, 30, ""), 100, 16)
    with pytest.raises(ValueError, match="longer than"):
        allele_windows(Change(10, 10, "A" * 17), 100, 16)
    with pytest.raises(ValueError, match="outside"):
        allele_windows(Change(99, 101, ""), 100, 16)


def _brute_force_index(c: Change, w) -> list[int]:
    """Alt position -> ref position by explicit genome-coordinate lists (None for inserted bases)."""
    alt_coords = list(range(w.alt[0], c.start)) + [None] * len(c.inserted) + list(range(c.end, w.alt[1]))
    ref_coords = list(range(*w.ref))
    pos_in_ref = {g: i for i, g in enumerate(ref_coords)}
    index = [pos_in_ref.get(g) for g in alt_coords]
    free = iter(sorted(set(range(len(ref_coords))) - {i for i in index if i is not None}))
    return [i if i is not None else next(free) for i in index]


def test_alt_key_index_matches_brute_force_on_random_changes():
    rng = random.Random(3)
    for _ in range(400):
        n = rng.randint(1, 60)
        s = rng.randint(0, n)
        e = rng.randint(s, min(n, s + 8))
        ins = "".join(rng.choice("ACGT") for _ in range(rng.randint(0 if e > s else 1, 8)))
        c = Change(s, e, ins)
        try:
            w = allele_windows(c, n, rng.randint(1, 40))
        except ValueError:
            continue
        W = w.length
        assert w.ref[1] - w.ref[0] == W and w.alt[1] - w.alt[0] == W + (e - s) - len(ins)
        assert 0 <= w.ref[0] <= s and e <= w.ref[1] <= n and 0 <= w.alt[0] <= s and e <= w.alt[1] <= n
        index = alt_key_index(c, w)
        assert index.tolist() == _brute_force_index(c, w)
        if e - s == len(ins):
            assert index.tolist() == list(range(W))


# ----------------------------------------------------------------------------------------------- per-row draws


def test_permuted_draws_match_explicit_permutation_and_mirroring():
    model = motif_model()
    rng = np.random.default_rng(0)
    L = 24
    x = torch.as_tensor(np.stack([encode("".join(rng.choice(list("ACGT"), L))) for _ in range(3)]))
    draws = make_draws(6, L, "num_masked", 1)
    mirror = torch.arange(L - 1, -1, -1).expand(3, L)
    a = nelbo_with_draws(model.objective, model.denoiser, x, draws.permuted(mirror))
    b = nelbo_with_draws(model.objective, model.denoiser, x, draws.mirrored())
    assert torch.equal(a.samples, b.samples)
    perm = torch.stack([torch.randperm(L, generator=torch.Generator().manual_seed(i)) for i in range(3)])
    pd = draws.permuted(perm)
    for row in range(3):
        assert all(torch.equal(pd.row_keys(k, 3)[row], draws.keys[k, perm[row]]) for k in range(6))
        one = nelbo_with_draws(model.objective, model.denoiser, x[row:row + 1],
                               type(draws)(draws.u, draws.keys[:, perm[row]], draws.method))
        assert torch.allclose(one.samples[0], nelbo_with_draws(model.objective, model.denoiser, x, pd).samples[row])
    with pytest.raises(ValueError, match="permutation"):
        draws.permuted(torch.zeros(1, L, dtype=torch.long))
    with pytest.raises(ValueError, match="rows"):
        nelbo_with_draws(model.objective, model.denoiser, x[:2], pd)
    # mirroring permuted draws = permuting by the mirrored index
    c = nelbo_with_draws(model.objective, model.denoiser, x, pd.mirrored())
    assert torch.equal(c.samples, nelbo_with_draws(model.objective, model.denoiser, x,
                                                   draws.permuted(perm.flip(-1))).samples)


# ----------------------------------------------------------------------------------------------- motif world


def test_motif_denoiser_is_the_exact_posterior():
    """Oracle for the test world itself: enumeration of all 4^5 sequences of (1) vs the closed form."""
    motif, rho, L = "ACG", 0.3, 5
    seqs = ["".join(t) for t in itertools.product("ACGT", repeat=L)]
    p = torch.tensor([math.exp(-neg_log_p(s, motif, rho)) for s in seqs], dtype=torch.float64)
    assert abs(float(p.sum()) - 1) < 1e-12
    rng = random.Random(0)
    for _ in range(40):
        x = rng.choice(seqs)
        masked = [rng.random() < 0.5 for _ in range(L)]
        z = torch.tensor([[V.MASK_ID if m else V.A_ID + "ACGT".index(b) for b, m in zip(x, masked)]])
        got = torch.softmax(motif_denoiser(z, motif=motif, rho=rho), -1)[0][:, list(V.DNA_IDS)]
        compat = torch.tensor([all(m or s[i] == x[i] for i, m in enumerate(masked)) for s in seqs])
        for l in (i for i in range(L) if masked[i]):  # the objective reads masked positions only
            want = torch.tensor([float(p[compat & torch.tensor([s[l] == b for s in seqs])].sum()) for b in "ACGT"],
                                dtype=torch.float64)
            want = want / want.sum()
            assert torch.allclose(got[l], want, atol=1e-9), (x, masked, l)


MOTIF = "TATAAGGC"


@pytest.fixture(scope="module")
def motif_genome(tmp_path_factory):
    """Random background with the motif intact at 100, missing its base 3 at 250 (7 bp), and with an extra A
    after its base 5 at 400 (9 bp); no other occurrence."""
    seq = list(random_dna(600, 11))
    seq[100:108] = MOTIF
    seq[250:257] = MOTIF[:3] + MOTIF[4:]
    seq[400:409] = MOTIF[:5] + "A" + MOTIF[5:]
    seq = "".join(seq)
    assert count(seq, MOTIF) == 1
    return seq, Genome(write_fasta_text(tmp_path_factory.mktemp("motif") / "m.fa", {"m": seq}))


def _variants(seq):
    """(name, Variant, expected sign) with VCF-style anchored indels; 1-based POS = 0-based + 1."""
    def v(p0, ref_len, alt):
        return Variant("m", p0 + 1, seq[p0:p0 + ref_len], alt)
    return [
        ("del_in_motif", v(102, 2, seq[102]), -1),                    # deletes motif base 3
        ("ins_in_motif", v(104, 1, seq[104] + "GT"), -1),              # inserts GT after motif base 4
        ("snv_in_motif", v(103, 1, "C"), -1),
        ("complex_in_motif", v(101, 3, "GC"), -1),                     # ATA -> GC
        ("ins_restores", v(252, 1, seq[252] + MOTIF[3]), +1),          # puts back the missing base 3
        ("del_restores", v(404, 2, seq[404]), +1),                     # removes the extra A
        ("ins_near_motif", v(125, 1, seq[125] + "CA"), 0),             # 17 bp right of the motif: same window
        ("del_near_motif", v(84, 3, seq[84]), 0),                      # 14 bp left of the motif
        ("del_far", v(540, 2, seq[540]), 0),                           # no motif in its window
    ]


@pytest.mark.parametrize("method", ["num_masked", "antithetic"])
def test_motif_world_effect_signs_and_exact_oracle(motif_genome, method):
    """Exact denoiser: breaking the planted motif (deletion, insertion, SNV, complex) gives llr < 0,
    restoring it gives llr > 0 (z beyond 4), and every llr agrees with the exact log p(alt) - log p(ref)
    of (1) within 4 standard errors; variants that leave the motif alone (in its window or far) have
    exact llr 0, |z| < 4 and |llr| < 0.5 nats (the effects are 7 nats)."""
    seq, genome = motif_genome
    named = _variants(seq)
    vs = [v for _, v, _ in named]
    score_variants(motif_model(MOTIF), vs, genome, window=64, num_samples=128, method=method, seed=0)
    for name, v, sign in named:
        ref_seq, alt_seq, _ = variant_windows(Variant(v.chrom, v.pos, v.ref, v.alt), genome, 64)
        exact = exact_llr(ref_seq, alt_seq, MOTIF)
        llr, se = v.result["llr"], v.result["llr_stderr"]
        assert abs(llr - exact) < 4 * se + 1e-6, (name, llr, exact, se)
        if sign == 0:
            assert exact == 0 and abs(v.result["z"]) < 4 and abs(llr) < 0.5, (name, v.result)
        else:
            assert np.sign(exact) == sign and sign * v.result["z"] > 4, (name, v.result, exact)


def test_motif_free_model_gives_no_effect(motif_genome):
    """Negative control: the same variants and the same sign test under a world whose motif does not occur
    in the genome (exact llr 0 for all): no motif-breaking or restoring variant passes it, so the signs
    above come from the motif, not from the window machinery (lengths, N padding, key map)."""
    seq, genome = motif_genome
    named = _variants(seq)
    other = "GCGCATAT"
    assert count(seq, other) == 0
    vs = [v for _, v, _ in named]
    score_variants(motif_model(other), vs, genome, window=64, num_samples=128, method="auto", seed=0)
    for name, v, sign in named:
        assert not (sign != 0 and sign * v.result["z"] > 4), (name, v.result)
        assert abs(v.result["llr"]) < 0.5, (name, v.result)


def test_aligned_keys_reduce_indel_noise(motif_genome):
    """The key map is what makes indel llrs precise: the same neutral indels scored with the alt keys *not*
    permuted (flank bases shifted against their keys) have a much larger paired standard error (measured:
    2-50x over seeds 0-7)."""
    seq, genome = motif_genome
    neutral = [v for _, v, sign in _variants(seq) if sign == 0]
    model = motif_model(MOTIF)
    score_variants(model, neutral, genome, window=64, num_samples=64, method="num_masked", seed=0)
    draws = make_draws(64, 64, "num_masked", 64)  # seed * 1_000_003 + L with seed 0, as score_variants
    aligned = unaligned = 0.0
    for v in neutral:
        ref_seq, alt_seq, index = variant_windows(Variant(v.chrom, v.pos, v.ref, v.alt), genome, 64)
        assert index.tolist() != list(range(64))
        ref = nelbo_with_draws(model.objective, model.denoiser, torch.as_tensor(encode(ref_seq))[None], draws)
        alt = nelbo_with_draws(model.objective, model.denoiser, torch.as_tensor(encode(alt_seq))[None], draws)
        unaligned += float((ref.samples - alt.samples).std() / math.sqrt(64))
        aligned += v.result["llr_stderr"]
    assert aligned < 0.5 * unaligned, (aligned, unaligned)
