"""``genodiff sample`` end to end with a real (tiny, briefly trained) exported checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from Bio import SeqIO

from _job_config import job_config
from genodiff.data.genome.reference import Genome
from genodiff.errors import InputError
from genodiff.tasks import sample



def make_cfg(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "out"), "num_samples": 3, "length": 64, "steps": 8, "batch_size": 2,
            "progress": False}
    return job_config("sample", **{**base, **overrides})


@pytest.mark.parametrize("sampler", ["ancestral", "cached", "first_hitting"])
def test_unconditional_fasta_and_sidecar(tmp_path, tiny_run, sampler):
    import pyfaidx

    cfg = make_cfg(tmp_path, checkpoint=str(tiny_run), sampler=sampler, length=70, seed=3)
    summary = sample.run(cfg)
    fa = tmp_path / "out" / "samples.fa"
    recs = list(SeqIO.parse(str(fa), "fasta"))
    assert [r.id for r in recs] == ["sample_0", "sample_1", "sample_2"]
    assert all(len(r.seq) == 70 and set(str(r.seq)) <= set("ACGT") for r in recs)
    desc = recs[0].description
    for key in ("model=", "checkpoint=sha256:", f"sampler={sampler}", "steps=", "seed=3"):
        assert key in desc
    idx = pyfaidx.Fasta(str(fa), rebuild=True)
    assert [str(idx[r.id][:]) for r in recs] == [str(r.seq) for r in recs]
    side = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert side["config"]["sampler"] == sampler and side["config"]["seed"] == 3
    assert side["model"]["digest"].startswith("sha256:")
    assert side["denoiser_calls"] == summary["denoiser_calls"] > 0
    # same seed -> same sequences
    again = sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), sampler=sampler, length=70, seed=3,
                                output_name="again"))
    assert [str(r.seq) for r in SeqIO.parse(str(tmp_path / "out" / "again.fa"), "fasta")] == \
        [str(r.seq) for r in recs]
    assert again["num_records"] == 3


@pytest.mark.parametrize("sampler", ["first_hitting", "cached"])
def test_progress_counts_denoiser_calls_with_the_estimate_up_front(tmp_path, tiny_run, sampler, capsys):
    """The expected number of denoiser calls is printed before the first call and is the progress bar's total,
    so the bar shows the time left from the first call on (exact for first-hitting: one call per base and
    batch); the bar ends at the calls actually made."""
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), sampler=sampler, length=70, steps=512,
                                  progress=True))
    err = capsys.readouterr().err
    calls = summary["denoiser_calls"]
    if sampler == "first_hitting":
        assert calls == 70 * 2 and "about 140 denoiser calls in 2 batch(es)" in err
    else:
        estimate = int(err.split("about ")[1].split(" denoiser")[0].replace(",", ""))
        assert abs(estimate - calls) < 0.2 * calls  # cached skips steps in which nothing unmasks
    assert f"{calls}/{calls}" in err and "3/3 sequences" in err


def test_prefix_suffix_and_semi_ar(tmp_path, tiny_run):
    cfg = make_cfg(tmp_path, checkpoint=str(tiny_run), length=150, block_length=64, stride=32,
                   **{"conditioning.prefix": "ACGTACGTAC", "conditioning.suffix": "GGGGCCCC"})
    sample.run(cfg)
    for r in SeqIO.parse(str(tmp_path / "out" / "samples.fa"), "fasta"):
        s = str(r.seq)
        assert len(s) == 150 and s.startswith("ACGTACGTAC") and s.endswith("GGGGCCCC")
    bed = (tmp_path / "out" / "samples.infill.bed").read_text().split("\n")[0].split("\t")
    assert bed[:3] == ["sample_0", "10", "142"]


def test_region_infilling_from_bed_keeps_flanks(tmp_path, tiny_run, genome_fa):
    bed = tmp_path / "r.bed"
    bed.write_text("chrA\t100\t140\nchrB\t2990\t3000\n")
    cfg = make_cfg(tmp_path, checkpoint=str(tiny_run), num_samples=2,
                   **{"conditioning.fasta": str(genome_fa), "conditioning.bed": str(bed), "conditioning.flank": 20})
    sample.run(cfg)
    g = Genome(genome_fa)
    recs = {r.id: str(r.seq) for r in SeqIO.parse(str(tmp_path / "out" / "samples.fa"), "fasta")}
    assert set(recs) == {"chrA_100_140_0", "chrA_100_140_1", "chrB_2990_3000_0", "chrB_2990_3000_1"}
    for i in range(2):
        s = recs[f"chrA_100_140_{i}"]
        assert s[:20] == g.fetch("chrA", 80, 100) and s[60:] == g.fetch("chrA", 140, 160)
        assert recs[f"chrB_2990_3000_{i}"][:20] == g.fetch("chrB", 2970, 2990)
    info = json.loads((tmp_path / "out" / "samples.infill.json").read_text())
    first = info["runs"][0]
    assert (first["chrom"], first["genome_start"], first["genome_end"], first["start"], first["end"]) == \
        ("chrA", 100, 140, 20, 60)


def test_template_fasta_with_n_and_question_marks(tmp_path, tiny_run):
    t = tmp_path / "t.fa"
    t.write_text(">t1\nACGTNNNNNNACGT\n>t2\nAAAA????CCCC??\n")
    sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), num_samples=2,
                        **{"conditioning.template": str(t)}))
    recs = {r.id: str(r.seq) for r in SeqIO.parse(str(tmp_path / "out" / "samples.fa"), "fasta")}
    assert recs["t1_0"][:4] == "ACGT" and recs["t1_0"][10:] == "ACGT" and "N" not in recs["t1_0"]
    assert recs["t2_1"][:4] == "AAAA" and recs["t2_1"][8:12] == "CCCC"


def test_gc_target_rejection_reports_acceptance(tmp_path, tiny_run):
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), num_samples=2, batch_size=4,
                                  **{"gc.target": 0.5, "gc.tolerance": 0.1}))
    acc = summary["gc_target"]
    assert 0 < acc["acceptance_rate"] <= 1 and acc["accepted"] == 2
    for rec in summary["records"]:
        assert abs(rec["gc_generated"] - 0.5) <= 0.1 + 1e-9


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_run):
    with pytest.raises(InputError, match="sampler"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), sampler="magic"))
    with pytest.raises(InputError, match="checkpoint"):  # (no checkpoint at all is the bundled model)
        sample.run(make_cfg(tmp_path, checkpoint=str(tmp_path / "no_such_run")))
    with pytest.raises(InputError, match="region"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), **{"conditioning.fasta": str(tmp_path / "x.fa"),
                                                                     "conditioning.region": "chr1:5-2"}))
    with pytest.raises(InputError, match="top_p"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), top_p=0))
    with pytest.raises(InputError, match=r"^order: 'spiral' is not one of random, dilated$"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), order="spiral"))
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_reveal_order_is_a_key_and_in_the_provenance(tmp_path, tiny_run):
    """``order`` (default dilated, configs/sample.yaml) reaches the sampler and every FASTA header; first-hitting
    has no order; the same seed gives other sequences under the other order."""
    seqs = {}
    for order in ("dilated", "random"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), sampler="cached", order=order, output_name=order))
        recs = list(SeqIO.parse(str(tmp_path / "out" / f"{order}.fa"), "fasta"))
        assert all(f"order={order}" in r.description for r in recs)
        seqs[order] = [str(r.seq) for r in recs]
    assert seqs["dilated"] != seqs["random"]
    assert job_config("sample").order == "dilated"
    sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), sampler="first_hitting", output_name="fh"))
    assert "order=" not in next(SeqIO.parse(str(tmp_path / "out" / "fh.fa"), "fasta")).description


def test_text_kind_is_delegated(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "_run_text", lambda cfg: {"delegated": cfg.kind})
    assert sample.run(make_cfg(tmp_path, kind="text")) == {"delegated": "text"}


def test_imported_hf_caduceus_checkpoint(tmp_path):
    folder = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "caduceus_parity" / "ph_small"
    if not (folder / "config.json").is_file():
        pytest.skip("Caduceus parity fixture not present")
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(folder), num_samples=2, length=32))
    assert summary["model"]["name"] == "caduceus-ph-mdlm-imported"
    recs = list(SeqIO.parse(str(tmp_path / "out" / "samples.fa"), "fasta"))
    assert len(recs) == 2 and "checkpoint=sha256:" in recs[0].description


def test_duplicate_template_ids_are_made_unique():
    from genodiff.generate.conditioning import blank_template

    ts = sample._unique_ids([blank_template("r", 4), blank_template("r", 4), blank_template("q", 4)])
    assert [t.id for t in ts] == ["r", "r.2", "q"]
