"""FASTA written by genodiff is read back identically by Biopython and pyfaidx, and passes the strict scanner."""

from __future__ import annotations

import pytest
from Bio import SeqIO

from gen_helpers import random_dna
from genodiff.data.genome.fasta import scan_fasta
from genodiff.errors import InputError
from genodiff.generate.fasta import read_fasta, sanitize_id, write_fasta


@pytest.mark.parametrize("width", [60, 7])
def test_fasta_round_trip_biopython_and_pyfaidx(tmp_path, width):
    import pyfaidx

    records = [(f"s{i}", f"model=m checkpoint=sha256:ab seed={i} note=two words", random_dna(n, i))
               for i, n in enumerate([1, 59, 60, 61, 120, 1000])]
    path = write_fasta(tmp_path / "x.fa", records, width)
    scan_fasta(path)  # consistent wrapping, DNA only
    bio = list(SeqIO.parse(str(path), "fasta"))
    assert [r.id for r in bio] == [r[0] for r in records]
    assert [str(r.seq) for r in bio] == [r[2] for r in records]
    assert bio[0].description.startswith("s0 model=m ")
    assert "note=two words" in bio[0].description  # description kept after the first space
    fa = pyfaidx.Fasta(str(path), rebuild=True)
    for rid, _, seq in records:
        assert str(fa[rid][:]) == seq
        assert str(fa[rid][3:17]) == seq[3:17]
    lines = path.read_text().splitlines()
    assert all(len(line) <= width for line in lines if not line.startswith(">"))


def test_ids_are_sanitized_and_unique(tmp_path):
    assert sanitize_id("chr2:100-200 x") == "chr2_100-200_x"
    assert " " not in sanitize_id("a b\tc")
    with pytest.raises(ValueError):
        write_fasta(tmp_path / "d.fa", [("a", "", "ACGT"), ("a", "", "ACGT")])
    assert not (tmp_path / "d.fa").exists()  # atomic: no partial file


def test_read_fasta_errors(tmp_path):
    (tmp_path / "bad.fa").write_text(">a\nACGTX\n")
    with pytest.raises(InputError, match="non-DNA"):
        read_fasta(tmp_path / "bad.fa")
    (tmp_path / "notfa.txt").write_text("hello\n")
    with pytest.raises(InputError, match="not a FASTA"):
        read_fasta(tmp_path / "notfa.txt")
    with pytest.raises(InputError, match="not found"):
        read_fasta(tmp_path / "missing.fa")
