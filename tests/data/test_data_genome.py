import os
import pickle

import numpy as np
import pytest

from genodiff.data.genome.aliases import ChromAliases
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.tokenizer import DNATokenizer, reverse_complement
from genodiff.errors import InputError

from data_helpers import write_fasta


@pytest.mark.parametrize("compress", ["plain", "bgzip", "gzip"])
def test_fetch_all_compressions(tmp_path, small_records, compress):
    fa = write_fasta(tmp_path / "g.fa", small_records, compress=compress)
    g = Genome(fa, uppercase=False)
    assert g.lengths == {k: len(v) for k, v in small_records.items()}
    rng = np.random.default_rng(3)
    for _ in range(100):
        chrom = str(rng.choice(g.names))
        n = g.lengths[chrom]
        s = int(rng.integers(-10, n + 5))
        e = s + int(rng.integers(0, 200))
        exp = "N" * max(0, min(e, 0) - s) + small_records[chrom][max(s, 0):max(0, min(e, n))]
        exp += "N" * (e - s - len(exp))
        assert g.fetch(chrom, s, e) == exp
        assert g.fetch(chrom, s, e, "-") == reverse_complement(exp)
    assert Genome(fa).fetch("chr2", 0, 20) == small_records["chr2"][:20].upper()


def test_fetch_ids_and_padding(tmp_path, small_fasta, small_records):
    g = Genome(small_fasta)
    assert g.fetch("chrM", -3, 2) == "NNN" + small_records["chrM"][:2].upper()
    assert g.fetch("chrM", 200, 205) == "NNNNN"
    assert g.fetch("chrM", -10, -5) == "NNNNN"
    assert g.fetch("chrM", 5, 5) == ""
    ids = g.fetch_ids("chr1", 290, 310, "-")
    assert np.array_equal(ids, DNATokenizer().encode(g.fetch("chr1", 290, 310, "-")))
    with pytest.raises(InputError, match="end < start"):
        g.fetch("chr1", 5, 1)


def test_aliases_manifest_and_toggling():
    a = ChromAliases(["chr1", "2", "chrM"], {"chr1": ["1", "NC_000001.11"], "chr2": ["NC_000002.12"]})
    assert a.resolve("chr1") == "chr1"
    assert a.resolve("1") == "chr1"
    assert a.resolve("NC_000001.11") == "chr1"
    assert a.resolve("chr2") == "2"          # automatic toggle
    assert a.resolve("NC_000002.12") == "2"  # manifest + toggle
    assert a.resolve("MT") == "chrM"
    assert a.resolve("chr3") is None
    assert ChromAliases(["chr1"], toggle_chr=False).resolve("1") is None


def test_genome_aliases(tmp_path, small_fasta):
    g = Genome(small_fasta, aliases={"chr1": ["NC_000001.11"]})
    assert g.fetch("NC_000001.11", 300, 310) == g.fetch("chr1", 300, 310) == g.fetch("1", 300, 310)
    with pytest.raises(InputError, match="unknown chromosome 'chr7'"):
        g.fetch("chr7", 0, 1)


def test_validation_before_indexing(tmp_path):
    fa = tmp_path / "bad.fa"
    fa.write_bytes(b">a\nACGT\nAC\nACGT\n")
    with pytest.raises(InputError, match="line 4: inconsistent line wrapping"):
        Genome(fa)
    assert not (tmp_path / "bad.fa.fai").exists()
    fa.write_bytes(b">a\nACGT\n>a\nAC\n")
    with pytest.raises(InputError, match="duplicate record name"):
        Genome(fa)


def test_crlf_fasta(tmp_path, small_records):
    fa = write_fasta(tmp_path / "crlf.fa", small_records, crlf=True)
    g = Genome(fa)
    assert g.fetch("chr2", 50, 190) == small_records["chr2"][50:190].upper()


def test_readonly_dir_uses_index_dir(tmp_path, small_records):
    d = tmp_path / "ro"
    d.mkdir()
    fa = write_fasta(d / "g.fa", small_records)
    os.chmod(d, 0o555)
    try:
        idx = tmp_path / "idx"
        g = Genome(fa, index_dir=idx)
        assert (idx / "g.fa.fai").exists()
        assert g.fetch("chr2", 0, 5) == small_records["chr2"][:5].upper()
    finally:
        os.chmod(d, 0o755)


def test_pickle_and_reopen(small_fasta):
    g = Genome(small_fasta)
    g.fetch("chr1", 0, 5)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2.fetch("chr1", 300, 320) == g.fetch("chr1", 300, 320)
