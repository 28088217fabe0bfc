"""Datasets and label mapping: sorted classes, recorded mapping, clear one-line errors."""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from genodiff.benchmarks import datasets as ds
from genodiff.benchmarks.gb import GB_TASKS, coordinate_file_name, load_gb_coordinates, load_gb_task
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.tokenizer import DNATokenizer, reverse_complement
from genodiff.errors import InputError

from bench_helpers import motif_dataset, random_seq, write_fasta_gz, write_gb_folder


def _one_line(exc: InputError) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg
    return msg


def test_class_order_numeric_and_string():
    assert ds.class_order(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert ds.class_order([1, 0, 1]) == ["0", "1"]
    assert ds.class_order(["positive", "negative"]) == ["negative", "positive"]
    assert ds.class_order(["promoter", "enhancer", "ocr"]) == ["enhancer", "ocr", "promoter"]
    with pytest.raises(InputError, match="only one class"):
        ds.class_order(["1", "1"])


def test_encode_matches_tokenizer():
    seqs = ["ACGTN", "acgtR", "A"]
    ids, lengths, nt, na = ds.encode_sequences(seqs)
    tok = DNATokenizer()
    ref, mask = tok.encode_batch(seqs)
    assert np.array_equal(ids, ref.numpy().astype(np.uint8))
    assert np.array_equal(lengths, mask.sum(1).numpy())
    assert nt == 0 and na == 1
    ids, lengths, nt, _ = ds.encode_sequences(seqs, max_length=3)
    assert ids.shape == (3, 3) and nt == 2 and list(lengths) == [3, 3, 1]


def test_table_labels_sorted_and_recorded(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("seq\tlabel\nACGT\t10\nAAAA\t2\nCCCC\t10\nGGGG\t2\nTTTT\t1\n")
    data = ds.load_table(p)
    assert data.classes == ["1", "2", "10"]
    assert data.label_map == {"1": 0, "2": 1, "10": 2}
    assert data.splits["all"].labels.tolist() == [2, 1, 2, 1, 0]
    assert data.describe()["label_map"] == {"1": 0, "2": 1, "10": 2}


def test_gb_folder_sorted_labels_and_scrambled_listing(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    neg = [random_seq(rng, 30) for _ in range(5)]
    pos = [random_seq(rng, 30) for _ in range(4)]
    root = write_gb_folder(tmp_path / "task", {"train": {"positive": pos, "negative": neg},
                                               "test": {"negative": neg[:2], "positive": pos[:2]}})
    ref = ds.load_gb_folder(root)
    assert ref.classes == ["negative", "positive"] and ref.label_map == {"negative": 0, "positive": 1}
    tok = DNATokenizer()
    want = {tok.decode(tok.encode(s)): 0 for s in neg} | {tok.decode(tok.encode(s)): 1 for s in pos}

    def decoded(data):
        tr = data.splits["train"]
        return {tok.decode(tr.ids[i, :tr.lengths[i]]): int(tr.labels[i]) for i in range(len(tr))}

    assert decoded(ref) == want
    # scramble the file-system listing order (positive first, files shuffled): labels must not change
    original = Path.iterdir

    def scrambled(self):
        items = list(original(self))
        random.Random(len(str(self))).shuffle(items)
        return iter(sorted(items, key=lambda p: p.name, reverse=True) if len(items) == 2 else items)

    monkeypatch.setattr(Path, "iterdir", scrambled)
    again = ds.load_gb_folder(root)
    assert again.classes == ["negative", "positive"]
    assert decoded(again) == want
    assert np.array_equal(again.splits["train"].labels, ref.splits["train"].labels)


@pytest.mark.parametrize("content, match", [
    ("sequence,value\nACGT,1\n", "missing label column"),
    ("foo,label\nACGT,1\nACGA,0\n", "missing seq column"),
    ("sequence,label\nACGT,1\nACGA,1\n", "only one class"),
    ("sequence,label\nACGT,1\n,0\n", "row 3: empty sequence"),
    ("sequence,label\nACGT,1\nACXA,0\n", "row 3: non-DNA character 'X' at position 3"),
    ("sequence,label\nACGT,1\nACGA,\n", "row 3: empty label"),
])
def test_table_errors(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=match) as e:
        ds.load_table(p)
    assert str(p) in _one_line(e.value)


def test_missing_file_and_parquet(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        ds.load_table(tmp_path / "nope.csv")
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="needs pyarrow"):
            ds.load_table(p)


def test_split_folder(tmp_path):
    seqs, labels = motif_dataset(20)
    for split in ("train", "dev", "test"):
        with gzip.open(tmp_path / f"{split}.csv.gz", "wt") as fh:
            fh.write("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(seqs, labels)))
    data = ds.load_split_folder(tmp_path)
    assert set(data.splits) == {"train", "dev", "test"} and data.classes == ["0", "1"]


def _coord_csv(path: Path, rows):
    with gzip.open(path, "wt") as fh:
        fh.write("id,region,start,end,strand\n")
        for r in rows:
            fh.write(",".join(map(str, r)) + "\n")


def test_gb_coordinates_with_minus_strand(tmp_path):
    rng = np.random.default_rng(3)
    chrom = {"1": random_seq(rng, 500), "2": random_seq(rng, 300), "ENST0001.3": random_seq(rng, 80)}
    fa = write_fasta_gz(tmp_path / "g.fa.gz", chrom)
    genome = Genome(fa)
    pos_rows = [("p0", "1", 10, 60, "+"), ("p1", "2", 100, 150, "-")]
    neg_rows = [("n0", "chr1", 200, 250, "-"), ("n1", "1", 0, 50, "+"),  # 'chr1' resolves to '1'
                ("n2", "ENST0001", 5, 25, "+")]  # transcript id without its version
    _coord_csv(tmp_path / "pos.csv.gz", pos_rows)
    _coord_csv(tmp_path / "neg.csv.gz", neg_rows)
    data = load_gb_coordinates({"train": {"positive": tmp_path / "pos.csv.gz", "negative": tmp_path / "neg.csv.gz"}},
                               {"positive": genome, "negative": genome}, "toy")
    tr = data.splits["train"]
    tok = DNATokenizer()
    got = [(tok.decode(tr.ids[i, :tr.lengths[i]]), int(tr.labels[i])) for i in range(len(tr))]
    expect = [(chrom["1"][200:250][::-1].translate(str.maketrans("ACGT", "TGCA")), 0), (chrom["1"][0:50], 0),
              (chrom["ENST0001.3"][5:25], 0), (chrom["1"][10:60], 1), (reverse_complement(chrom["2"][100:150]), 1)]
    assert got == expect
    assert data.label_map == {"negative": 0, "positive": 1}


def test_gb_coordinate_errors(tmp_path):
    rng = np.random.default_rng(4)
    genome = Genome(write_fasta_gz(tmp_path / "g.fa.gz", {"1": random_seq(rng, 100)}))
    _coord_csv(tmp_path / "a.csv.gz", [("x", "1", 10, 20, "*")])
    with pytest.raises(InputError, match="line 2: strand"):
        load_gb_coordinates({"train": {"a": tmp_path / "a.csv.gz", "b": tmp_path / "a.csv.gz"}},
                            {"a": genome, "b": genome})
    _coord_csv(tmp_path / "b.csv.gz", [("x", "1", 90, 120, "+")])
    data = load_gb_coordinates({"train": {"a": tmp_path / "b.csv.gz", "b": tmp_path / "b.csv.gz"}},
                               {"a": genome, "b": genome})
    assert data.splits["train"].lengths.tolist() == [10, 10] and "cut at the end" in data.notes[0]
    _coord_csv(tmp_path / "b2.csv.gz", [("x", "1", 100, 120, "+")])
    with pytest.raises(InputError, match="starts past the end"):
        load_gb_coordinates({"train": {"a": tmp_path / "b2.csv.gz", "b": tmp_path / "b2.csv.gz"}},
                            {"a": genome, "b": genome})
    _coord_csv(tmp_path / "b3.csv.gz", [("x", "chrZ", 1, 5, "+")])
    with pytest.raises(InputError, match="region 'chrZ' is not in the reference"):
        load_gb_coordinates({"train": {"a": tmp_path / "b3.csv.gz", "b": tmp_path / "b3.csv.gz"}},
                            {"a": genome, "b": genome})
    (tmp_path / "c.csv").write_text("id,region,start\nx,1,3\n")
    with pytest.raises(InputError, match="missing column"):
        load_gb_coordinates({"train": {"a": tmp_path / "c.csv", "b": tmp_path / "c.csv"}}, {"a": genome, "b": genome})


def test_gb_manifests_and_cached_task(tmp_path, monkeypatch):
    from genodiff.data import manifest as mf

    for task, spec in GB_TASKS.items():
        m = mf.load_manifest(f"gb_{task}")
        names = {f.name for f in m.files}
        assert set(spec["classes"].values()) <= names
        for split in ("train", "test"):
            for cls in spec["classes"]:
                f = next(f for f in m.files if f.name == coordinate_file_name(split, cls))
                assert f.url.endswith(f"/datasets/{task}/{split}/{cls}.csv.gz")
    # a generated genome + coordinate files placed in the cache as `genodiff data download` would
    cache = tmp_path / "cache"
    folder = cache / "gb_human_enhancers_cohn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    write_fasta_gz(folder / GB_TASKS["human_enhancers_cohn"]["classes"]["positive"], {"1": random_seq(rng, 400)})
    for split in ("train", "test"):
        _coord_csv(folder / coordinate_file_name(split, "positive"), [("a", "1", 0, 30, "+"), ("b", "1", 40, 70, "-")])
        _coord_csv(folder / coordinate_file_name(split, "negative"), [("c", "1", 100, 130, "+")])
    data = load_gb_task("human_enhancers_cohn", cache)
    assert data.classes == ["negative", "positive"]
    assert data.splits["train"].labels.tolist() == [0, 1, 1]
    shutil.rmtree(folder)
    with pytest.raises(InputError, match="genodiff data download gb_human_enhancers_cohn"):
        load_gb_task("human_enhancers_cohn", cache)


def test_real_nontata_labels(shared_data):
    path = shared_data / "genomic_benchmarks/human_nontata_promoters/test.csv.gz"
    if not path.exists():
        pytest.skip("nontata test split not present")
    data = ds.load_table(path)
    s = data.splits["all"]
    assert data.classes == ["0", "1"]
    assert s.class_counts() == {"0": 4119, "1": 4915}
    assert s.ids.shape == (9034, 251) and s.n_ambiguous == 0
