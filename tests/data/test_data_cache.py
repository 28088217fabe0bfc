import os
import pickle
import time

import numpy as np
import pytest

from genodiff.data.genome import cache as cache_mod
from genodiff.data.genome.cache import EncodedGenome, build_encoded_cache, cache_is_current
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.tokenizer import DNATokenizer, reverse_complement
from genodiff.data.genome.vocab import N_ID
from genodiff.errors import InputError

from data_helpers import write_fasta

TOK = DNATokenizer()


def _expected(records, chrom, start, end, strand="+"):
    seq = records[chrom]
    n = len(seq)
    s = "N" * max(0, min(end, 0) - start) + seq[max(start, 0):max(min(end, n), 0)] if end > 0 else ""
    s = ("N" * (end - start)) if end <= 0 or start >= n else \
        "N" * max(0, -start) + seq[max(start, 0):min(end, n)] + "N" * max(0, end - n)
    if strand == "-":
        s = reverse_complement(s)
    return s


@pytest.mark.parametrize("compress", ["plain", "gzip", "bgzip"])
def test_build_and_fetch(tmp_path, small_records, compress):
    fa = write_fasta(tmp_path / "g.fa", small_records, compress=compress)
    g = build_encoded_cache(fa, tmp_path / "cache", progress=False)
    assert g.names == ["chr1", "chr2", "chrM"]
    assert g.lengths == {k: len(v) for k, v in small_records.items()}
    rng = np.random.default_rng(0)
    for _ in range(200):
        chrom = rng.choice(g.names)
        n = g.lengths[chrom]
        start = int(rng.integers(-20, n + 10))
        end = start + int(rng.integers(0, 300))
        for strand in "+-":
            got = g.fetch(chrom, start, end, strand)
            assert got.dtype == np.uint8 and got.shape == (end - start,)
            assert np.array_equal(got, TOK.encode(_expected(small_records, chrom, start, end, strand)))
            exp_case = _expected(small_records, chrom, start, end, strand)
            assert g.fetch_string(chrom, start, end, strand, keep_case=True) == \
                exp_case.translate(str.maketrans("RYry", "NNnn"))
            sm = g.fetch_softmask(chrom, start, end, strand)
            assert sm.tolist() == [c.islower() for c in exp_case]


def test_zero_copy_view_and_readonly(tmp_path, small_fasta):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False)
    v = g.fetch("chr1", 100, 200)
    assert np.shares_memory(v, g.tokens)
    assert not v.flags.writeable
    assert not np.shares_memory(g.fetch("chr1", 100, 200, "-"), g.tokens)


def test_summary_counts_ambiguity(tmp_path, small_fasta, small_records):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False)
    s = g.summary()
    assert s["ambiguous_to_n"] == {"R": 1, "Y": 1}
    assert s["n"] == sum(v.upper().count("N") for v in small_records.values()) + 2
    assert s["bp"] == sum(map(len, small_records.values()))


def test_n_count_matches_bruteforce(tmp_path, small_fasta):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False, block_size=97)
    rng = np.random.default_rng(1)
    chroms, starts, ends, exp = [], [], [], []
    for _ in range(500):
        ci = int(rng.integers(0, 3))
        n = g.contigs[ci].length
        s = int(rng.integers(-50, n + 20))
        e = s + int(rng.integers(0, 400))
        chroms.append(ci)
        starts.append(s)
        ends.append(e)
        exp.append(int(np.count_nonzero(g.fetch(ci, s, e) == N_ID)))
    assert g.n_count(np.array(chroms), starts, ends).tolist() == exp


def test_fetch_batch_matches_fetch(tmp_path, small_fasta):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False)
    rng = np.random.default_rng(2)
    ci = rng.integers(0, 3, 64)
    st = np.array([rng.integers(-30, g.contigs[c].length) for c in ci])
    rev = rng.random(64) < 0.5
    out = g.fetch_batch(ci, st, 100, rev)
    assert out.shape == (64, 100) and out.dtype == np.uint8
    for b in range(64):
        assert np.array_equal(out[b], g.fetch(int(ci[b]), int(st[b]), int(st[b]) + 100, "-" if rev[b] else "+"))
    inside = g.fetch_batch(["chr1", "chr1"], [400, 500], 50)
    assert np.array_equal(inside[1], g.fetch("chr1", 500, 550))


def test_aliases_and_errors(tmp_path, small_fasta):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False,
                            aliases={"chr2": ["2", "NC_000002.12"]})
    assert np.array_equal(g.fetch("NC_000002.12", 0, 10), g.fetch("chr2", 0, 10))
    assert np.array_equal(g.fetch("1", 0, 10), g.fetch("chr1", 0, 10))  # chr toggling
    assert np.array_equal(g.fetch("MT", 0, 10), g.fetch("chrM", 0, 10))
    with pytest.raises(InputError, match="unknown chromosome 'chr9'"):
        g.fetch("chr9", 0, 10)
    with pytest.raises(InputError, match="end < start"):
        g.fetch("chr1", 10, 5)
    with pytest.raises(InputError, match="strand"):
        g.fetch("chr1", 0, 5, "x")


def test_reuse_and_rebuild_on_change(tmp_path, small_records):
    fa = write_fasta(tmp_path / "g.fa", small_records)
    cdir = tmp_path / "cache"
    g1 = build_encoded_cache(fa, cdir, progress=False)
    built_at = (cdir / "tokens.u8").stat().st_mtime_ns
    g2 = build_encoded_cache(fa, cdir, progress=False)  # unchanged: reused
    assert (cdir / "tokens.u8").stat().st_mtime_ns == built_at
    assert cache_is_current(cdir, fa)
    # change the FASTA (same size, same head: only the middle changes)
    recs = dict(small_records)
    s = recs["chr1"]
    recs["chr1"] = s[:1000] + ("A" if s[1000] != "A" else "C") + s[1001:]
    time.sleep(0.01)
    write_fasta(fa, recs)
    os.utime(fa, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert not cache_is_current(cdir, fa)
    with pytest.raises(InputError, match="stale"):
        EncodedGenome.open(cdir, source=fa)
    g3 = build_encoded_cache(fa, cdir, progress=False)
    assert g3.fetch_string("chr1", 1000, 1001) == recs["chr1"][1000].upper()
    assert cache_is_current(cdir, fa)
    assert g1.names == g2.names == g3.names
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".cache.")]
    assert leftovers == []


def test_atomic_failure_leaves_nothing(tmp_path, small_fasta, monkeypatch):
    cdir = tmp_path / "out" / "cache"

    def boom(*a, **k):
        raise RuntimeError("simulated crash mid-build")

    monkeypatch.setattr(cache_mod, "_write_index", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        build_encoded_cache(small_fasta, cdir, progress=False)
    assert not cdir.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_failure_keeps_previous_cache(tmp_path, small_records, monkeypatch):
    fa = write_fasta(tmp_path / "g.fa", small_records)
    cdir = tmp_path / "cache"
    build_encoded_cache(fa, cdir, progress=False)
    before = (cdir / "tokens.u8").read_bytes()
    monkeypatch.setattr(cache_mod, "_write_index", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        build_encoded_cache(fa, cdir, progress=False, force=True)
    assert (cdir / "tokens.u8").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "g.fa"]


def test_bad_input_leaves_nothing(tmp_path):
    fa = tmp_path / "bad.fa"
    fa.write_bytes(b">a\n" + b"ACGT" * 10000 + b"\nACQT\n")
    with pytest.raises(InputError, match=r"line 3: non-DNA character 'Q' \(column 3\)"):
        build_encoded_cache(fa, tmp_path / "cache", progress=False, block_size=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]


def test_refuses_to_replace_foreign_directory(tmp_path, small_fasta):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a genodiff encoded-genome cache"):
        build_encoded_cache(small_fasta, d, progress=False)
    assert (d / "precious.txt").read_text() == "keep me"


def test_stale_tmp_from_killed_build_is_cleaned(tmp_path, small_fasta):
    dead = tmp_path / ".cache.tmp-999999999-abc"
    dead.mkdir()
    (dead / "tokens.u8").write_bytes(b"partial")
    build_encoded_cache(small_fasta, tmp_path / "cache", progress=False)
    assert not dead.exists()


def test_open_errors(tmp_path):
    with pytest.raises(InputError, match="not a genodiff encoded-genome cache"):
        EncodedGenome.open(tmp_path)
    with pytest.raises(InputError, match="not found"):
        build_encoded_cache(tmp_path / "missing.fa", tmp_path / "c", progress=False)


def test_pickle_reopens_lazily(tmp_path, small_fasta):
    g = build_encoded_cache(small_fasta, tmp_path / "c", progress=False)
    _ = g.tokens
    g2 = pickle.loads(pickle.dumps(g))
    assert g2._tokens is None
    assert np.array_equal(g2.fetch("chr2", 5, 50), g.fetch("chr2", 5, 50))


def test_real_slice_matches_pyfaidx(chr2_cache, chr2_plain):
    """Cache == pyfaidx fetch on random windows of the real hg38 slice (both strands, padding)."""
    fa = Genome(chr2_plain, index_dir=chr2_plain.parent)
    name = chr2_cache.names[0]
    assert chr2_cache.lengths == fa.lengths == {name: 2_000_000}
    rng = np.random.default_rng(7)
    for _ in range(300):
        start = int(rng.integers(-100, 2_000_000))
        end = start + int(rng.integers(1, 2048))
        strand = "-" if rng.random() < 0.5 else "+"
        assert chr2_cache.fetch_string(name, start, end, strand) == fa.fetch(name, start, end, strand)
    s = chr2_cache.summary()
    assert s["n"] == 10_000 and s["soft_masked"] == 725_560
    assert chr2_cache.n_count([0], [0], [2_000_000]).tolist() == [10_000]


def test_open_detects_truncated_tokens(tmp_path, small_fasta):
    cdir = tmp_path / "c"
    build_encoded_cache(small_fasta, cdir, progress=False)
    data = (cdir / "tokens.u8").read_bytes()
    (cdir / "tokens.u8").write_bytes(data[:-10])
    with pytest.raises(InputError, match="incomplete or corrupt"):
        EncodedGenome.open(cdir)
    assert not cache_is_current(cdir, small_fasta)
    g = build_encoded_cache(small_fasta, cdir, progress=False)  # rebuilt
    assert (cdir / "tokens.u8").read_bytes() == data and g.total_length == len(data)
