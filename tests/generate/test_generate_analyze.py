"""Sequence statistics and the ``genodiff analyze`` report."""

from __future__ import annotations


import numpy as np
import pytest

from _job_config import job_config
from gen_helpers import random_dna, write_fasta_text
from genodiff.analysis import sequence_stats as S
from genodiff.errors import InputError
from genodiff.tasks import analyze



def test_statistics_on_known_inputs():
    assert S.gc_values(["GGCC", "AATT", "GCNN", "NNNN"])[:3].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(S.gc_values(["NNNN"])[0])
    sp = S.kmer_spectrum(["ACGT"], 2)
    assert sp.sum() == pytest.approx(1.0) and sp[1] == pytest.approx(1 / 3)  # AC = 0*4+1
    assert S.kmer_counts(["ACNGT"], 2).sum() == 2  # AC, GT (k-mers with N skipped)
    p = S.kmer_spectrum([random_dna(5000, 1)], 3)
    assert S.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert S.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    h = S.homopolymer_stats(["AAAAACGT", "CCCCCCCC"], min_length=5)
    assert h["longest_max"] == 8 and h["fraction_in_runs"] == pytest.approx(13 / 16)
    tr = S.tandem_repeat_fraction(["CACACAGT"], max_unit=3, min_copies=3)
    assert tr["unit_2"] == pytest.approx(6 / 8) and tr["unit_1"] == 0
    assert S.n_fraction(["ACGN"]) == 0.25
    assert S.duplicate_fraction(["A", "A", "C", "A"]) == 0.5
    assert S.shared_fraction(["A", "C"], ["C"]) == 0.5


def test_analyze_report_with_markov_and_motifs(tmp_path):
    ref = write_fasta_text(tmp_path / "ref.fa", {f"r{i}": random_dna(200, i) for i in range(10)})
    gen = write_fasta_text(tmp_path / "gen.fa", {f"g{i}": random_dna(200, 100 + i) for i in range(5)}
                           | {"dup": random_dna(200, 100), "poly": "A" * 50 + "CA" * 20 + "N" * 10})
    ar = write_fasta_text(tmp_path / "ar.fa", {"a": random_dna(300, 7)})
    motifs = tmp_path / "m.jaspar"
    motifs.write_text(">MA9999.1 TATA\nA [ 0 10 0 10 ]\nC [ 0 0 0 0 ]\nG [ 0 0 0 0 ]\nT [ 10 0 10 0 ]\n")
    cfg = job_config("analyze")
    cfg.update({"samples": str(gen), "reference": str(ref), "ar": str(ar), "markov_order": 1, "motifs": str(motifs),
                "output_dir": str(tmp_path / "out")})
    res = analyze.run(cfg)
    sets = res["sets"]
    assert set(sets) == {"reference", "samples", "ar", "markov1_fit"}
    assert sets["reference"]["kmer_js_bits"][3] == 0.0
    assert sets["samples"]["duplicate_fraction"] == pytest.approx(1 / 7)
    assert sets["samples"]["n_fraction"] > 0
    assert sets["samples"]["homopolymer"]["longest_max"] == 50
    assert "MA9999.1_TATA" in sets["samples"]["motifs_per_kb"]
    out = tmp_path / "out"
    for name in ("report.md", "results.json", "gc.png", "kmer_js.png", "homopolymer.png", "kmer3_scatter.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "JS k=6" in report and "markov1_fit" in report
    with pytest.raises(InputError, match="reference"):
        cfg.reference = None
        analyze.run(cfg)
