"""The generated demo genome: deterministic, realistic statistics, repeats and N gaps."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from genodiff.data.genome import demo as dg


@pytest.fixture(scope="module")
def demo_fasta(tmp_path_factory):
    return dg.write_demo_genome(tmp_path_factory.mktemp("demo") / "demo.fa")


def test_committed_table_is_small_and_valid():
    res = resources.files("genodiff").joinpath("resources", dg.MARKOV_TABLE)
    assert len(res.read_bytes()) < 100_000
    table = dg.read_markov_table()
    assert table.k == 5 and table.counts.shape == (1024, 4) and table.counts.min() > 0
    # fitted on both strands: reverse-complement symmetric (count of w equals count of revcomp(w))
    flat = table.counts.reshape(-1)
    codes = np.arange(4 ** 6)
    rc = np.zeros_like(codes)
    for j in range(6):
        rc = rc * 4 + (3 - (codes >> (2 * j)) & 3)
    assert np.array_equal(flat, flat[rc])


def test_table_round_trip(tmp_path):
    table = dg.read_markov_table()
    dg.write_markov_table(table, tmp_path / "t.tsv", source="test")
    again = dg.read_markov_table(tmp_path / "t.tsv")
    assert again.k == table.k and np.array_equal(again.counts, table.counts)


def test_refit_reproduces_committed_table(shared_data, tmp_path):
    fasta = shared_data / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
    table = dg.fit_markov_table(fasta, k=5)
    assert np.array_equal(table.counts, dg.read_markov_table().counts)


def test_deterministic_bytes(tmp_path, demo_fasta):
    small = dict(seed=3, chromosomes=(("a", 30_000), ("b", 20_000)))
    one = dg.write_demo_genome(tmp_path / "one.fa", **small).read_bytes()
    two = dg.write_demo_genome(tmp_path / "two.fa", **small).read_bytes()
    assert one == two
    assert dg.write_demo_genome(tmp_path / "three.fa", seed=4, chromosomes=small["chromosomes"]).read_bytes() != one
    # same default demo genome on every machine: pinned digest (changes only if the generator changes)
    digest = hashlib.sha256(demo_fasta.read_bytes()).hexdigest()
    assert digest == DEFAULT_DEMO_SHA256


def test_layout_gaps_and_masking(demo_fasta):
    records = {}
    name = None
    for line in demo_fasta.read_bytes().split(b"\n"):
        if line.startswith(b">"):
            name = line[1:].decode()
            records[name] = []
        elif line:
            assert len(line) <= dg.LINE_WIDTH
            records[name].append(line)
    assert list(records) == [n for n, _ in dg.DEFAULT_CHROMOSOMES]
    total = 0
    for name, length in dg.DEFAULT_CHROMOSOMES:
        seq = b"".join(records[name])
        assert len(seq) == length
        total += length
        assert set(seq) <= set(b"ACGTacgtN")
        tel = dg.TELOMERE_GAP
        assert seq[:tel] == b"N" * tel and seq[-tel:] == b"N" * tel
        assert b"N" in seq[tel:-tel]  # at least one internal gap
        lower = sum(seq.count(c) for c in b"acgt") / len(seq)
        assert 0.2 < lower < 0.5  # soft-masked repeats, roughly like hg38 (~50%) / the chr2 slice (36%)
    assert 1_000_000 <= total <= 4_000_000


def test_statistics_match_the_fitted_table(demo_fasta):
    table = dg.read_markov_table()
    got = dg.fit_markov_table(demo_fasta, k=5)
    gc_ref = table.base_frequencies()[1:3].sum()
    gc = got.base_frequencies()[1:3].sum()
    assert abs(gc - gc_ref) < 0.015
    di_ref, di = table.dinucleotide_frequencies(), got.dinucleotide_frequencies()
    assert np.abs(di - di_ref).max() < 0.006
    # CpG depletion kept: observed/expected CG well below 1 as in the human genome
    cg_oe = di[1, 2] / (got.base_frequencies()[1] * got.base_frequencies()[2])
    assert 0.15 < cg_oe < 0.5


def test_tandem_and_interspersed_repeats_present(demo_fasta):
    seq = b"".join(l for l in demo_fasta.read_bytes().split(b"\n") if l and not l.startswith(b">"))
    masked = seq.translate(bytes.maketrans(b"acgt", b"xxxx"), b"ACGTN")  # only the lower-case bases remain
    assert len(masked) > 0.2 * len(seq)
    runs = seq.translate(bytes.maketrans(b"acgtCGTN", b"xxxxAAAA")).split(b"A")
    assert max(len(r) for r in runs) > 1000  # long interspersed (LINE-like) copies
    # microsatellites: some 1- or 2-bp unit repeated >= 10 times, in lower case
    units = [a + b for a in "acgt" for b in "acgt" if a != b] + list("acgt")
    assert sum((u * 10).encode() in seq for u in units) >= 3


def test_windows_split():
    rows = dg.demo_windows()
    splits = {s for *_, s in rows}
    assert splits == {"train", "valid", "test"}
    for chrom, start, end, split in rows:
        assert end - start == 32_768 and start >= 0
        length = dict(dg.DEFAULT_CHROMOSOMES)[chrom]
        assert end <= length
        if split == "valid":
            assert chrom == "demo_chr2" and end <= length // 2
        if split == "test":
            assert chrom == "demo_chr2" and start >= length // 2


DEFAULT_DEMO_SHA256 = "25ebecf44dce032e4b22fa5e84f83a16ed0b00cdd1844a6060bd7d00b6b8b74a"
