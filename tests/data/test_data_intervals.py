import gzip

import numpy as np
import pytest

from genodiff.data.genome.cache import build_encoded_cache
from genodiff.data.genome.intervals import (Interval, Windows, filter_windows_by_n, genome_intervals, read_bed,
                                     split_by_chromosome, split_by_column, tile_windows, window_n_fraction)
from genodiff.errors import InputError

LENGTHS = {"chr1": 1000, "chr2": 500}


def _bed(tmp_path, text, name="x.bed"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_bed_basic_and_skips(tmp_path):
    p = _bed(tmp_path, "track name=x\nbrowser position chr1\n# comment\n\n"
                       "chr1\t0\t100\ttrain\n1\t100\t300\tvalid\nchr2 5 10 test\nchr2\t10\t10\n")
    ivs = read_bed(p, LENGTHS)
    assert [(i.chrom, i.start, i.end, i.split) for i in ivs] == [
        ("chr1", 0, 100, "train"), ("chr1", 100, 300, "valid"), ("chr2", 5, 10, "test"), ("chr2", 10, 10, None)]
    assert ivs[1].origin.endswith("x.bed:6")


def test_header_line_and_gzip(tmp_path):
    p = tmp_path / "h.bed.gz"
    p.write_bytes(gzip.compress(b"chrom\tstart\tend\tsplit\nchr1\t1\t2\ttrain\n"))
    assert [(i.chrom, i.start, i.end) for i in read_bed(p)] == [("chr1", 1, 2)]


BAD = [
    ("chr1\t5\n", "line 1: too few columns (2)"),
    ("chr1\t0\t10\nchr1\tx\t10\n", "line 2: start 'x' is not an integer"),
    ("chr1\t0\t1.5\n", "line 1: end '1.5' is not an integer"),
    ("chr1\t-5\t10\n", "line 1: negative coordinate"),
    ("chr1\t20\t10\n", "line 1: end 10 < start 20"),
    ("chr9\t0\t10\n", "line 1: unknown chromosome 'chr9'"),
    ("chr2\t0\t501\n", "line 1: end 501 is past the end of chr2 (length 500)"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bed_errors_one_line(tmp_path, text, msg):
    p = _bed(tmp_path, text)
    with pytest.raises(InputError) as ei:
        read_bed(p, LENGTHS)
    assert msg in str(ei.value) and str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_bed_skip_and_clip(tmp_path):
    p = _bed(tmp_path, "chr9\t0\t10\nchr2\t400\t600\nchr2\t600\t700\nchr1\t0\t5\n")
    ivs = read_bed(p, LENGTHS, unknown_chrom="skip", out_of_bounds="clip")
    assert [(i.chrom, i.start, i.end) for i in ivs] == [("chr2", 400, 500), ("chr1", 0, 5)]
    assert ivs.skipped == {"unknown_chrom": 1, "out_of_bounds": 2}
    ivs = read_bed(p, LENGTHS, unknown_chrom="skip", out_of_bounds="skip")
    assert [(i.chrom, i.start, i.end) for i in ivs] == [("chr1", 0, 5)]


def test_bed_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_bed(tmp_path / "none.bed")


def test_split_by_column_basenji_and_mapping(tmp_path):
    p = _bed(tmp_path, "chr1\t0\t10\ttrain\nchr1\t10\t20\tvalid\nchr2\t0\t10\ttest\nchr2\t10\t20\tvalidation\n")
    ivs = read_bed(p, LENGTHS)
    s = split_by_column(ivs)
    assert {k: len(v) for k, v in s.items()} == {"train": 1, "valid": 2, "test": 1}
    folds = [Interval("chr1", i, i + 1, f"fold{i % 4}") for i in range(8)]
    s = split_by_column(folds, {"fold3": "test", "fold2": "valid"}, default="train")
    assert {k: len(v) for k, v in s.items()} == {"train": 4, "valid": 2, "test": 2}
    with pytest.raises(InputError, match="fold0"):
        split_by_column(folds, {"fold3": "test"})
    with pytest.raises(InputError, match="no split label"):
        split_by_column([Interval("chr1", 0, 1, origin="a.bed:3")])


def test_split_by_chromosome():
    ivs = [Interval(c, 0, 10) for c in ("chr1", "chr2", "chr8", "chr9", "chr1")]
    s = split_by_chromosome(ivs, valid_chroms=["8"], test_chroms=["chr9"])
    assert [i.chrom for i in s["train"]] == ["chr1", "chr2", "chr1"]
    assert [i.chrom for i in s["valid"]] == ["chr8"] and [i.chrom for i in s["test"]] == ["chr9"]
    with pytest.raises(InputError):
        split_by_chromosome(ivs, valid_chroms=["chr8"], test_chroms=["8"])


def test_tile_windows():
    w = tile_windows([Interval("a", 0, 10, "train"), ("b", 5, 8), ("c", 100, 125)], length=4, stride=3)
    assert list(w) == [("a", 0, 4), ("a", 3, 7), ("a", 6, 10), ("c", 100, 104), ("c", 103, 107),
                       ("c", 106, 110), ("c", 109, 113), ("c", 112, 116), ("c", 115, 119), ("c", 118, 122), ("c", 121, 125)]
    assert w.splits[:3] == ["train"] * 3 and w.splits[3] is None
    w = tile_windows([("c", 0, 10)], length=4, include_tail=True)
    assert list(w) == [("c", 0, 4), ("c", 4, 8), ("c", 6, 10)]
    assert len(tile_windows([], 4)) == 0
    with pytest.raises(ValueError):
        tile_windows([("a", 0, 10)], 0)
    sub = w.subset(np.array([True, False, True]))
    assert list(sub) == [("c", 0, 4), ("c", 6, 10)]


def test_n_filter(tmp_path):
    seq = {"c1": "N" * 100 + "ACGT" * 25 + "N" * 50 + "ACGT" * 25, "c2": "ACGTACGTAC"}
    fa = tmp_path / "n.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seq.items()))
    g = build_encoded_cache(fa, tmp_path / "c", progress=False)
    w = tile_windows(genome_intervals(g.lengths), 50, 25)
    frac = window_n_fraction(w, g)
    brute = [np.mean(g.fetch(c, s, e) == 11) for c, s, e in w]
    assert np.allclose(frac, brute)
    kept = filter_windows_by_n(w, g, max_n_fraction=1.0)
    assert all(np.mean(g.fetch(c, s, e) == 11) < 1.0 for c, s, e in kept)
    assert len(kept) < len(w)
    strict = filter_windows_by_n(w, g, max_n_fraction=0.0)
    assert all(not np.any(g.fetch(c, s, e) == 11) for c, s, e in strict)
    # padding past the end counts as N
    pad = Windows(["c2"], [0, 0], [0, 5], 10)
    assert window_n_fraction(pad, g).tolist() == [0.0, 0.5]


def test_borzoi_bed_real(shared_data, chr2_cache):
    bed = shared_data / "borzoi_folds" / "sequences_human.bed.gz"
    ivs = read_bed(bed)
    assert len(ivs) == 55_497 and all(i.length == 196_608 for i in ivs[:100])
    s = split_by_column(ivs, {"fold3": "test", "fold4": "valid"}, default="train")
    assert (len(s["test"]), len(s["valid"]), len(s["train"])) == (6_888, 6_910, 55_497 - 6_888 - 6_910)
    on_slice = read_bed(bed, chr2_cache.lengths, {"chr2": ["chr2_1_2000000"]}, unknown_chrom="skip",
                        out_of_bounds="skip")
    assert len(on_slice) > 0 and all(i.chrom == "chr2_1_2000000" and i.end <= 2_000_000 for i in on_slice)
