"""Variant effect scores: parsing, per-record errors, common random numbers, periodic-world sanity."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from _job_config import job_config
from gen_helpers import write_fasta_text
from fakes import PERIOD, fake_model, periodic_denoiser
from genodiff.data.genome.reference import Genome
from genodiff.errors import InputError
from genodiff.generate.conditioning import encode
from genodiff.generate.scoring import make_draws, nelbo_with_draws
from genodiff.generate.variants import read_variants, score_variants
from genodiff.tasks import score

OTHER = {"A": "C", "C": "G", "G": "T", "T": "A"}


def score_cfg(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "out"), "num_samples": 8, "progress": False, "mode": "variants",
            "window": 64}
    return job_config("score", **{**base, **overrides})


def vcf_text(rows):
    head = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    return head + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\n" for c, p, i, r, a in rows)


def test_read_vcf_tsv_and_gzip(tmp_path):
    (tmp_path / "a.vcf").write_text(vcf_text([("chr1", 10, "rs1", "A", "C,T"), ("chr1", "x", "rs2", "A", "C")]))
    vs, fmt = read_variants(tmp_path / "a.vcf")
    assert fmt == "vcf" and [(v.pos, v.alt) for v in vs[:2]] == [(10, "C"), (10, "T")]
    assert "1-based" in vs[2].error
    with gzip.open(tmp_path / "a.vcf.gz", "wt") as fh:
        fh.write(vcf_text([("chr1", 10, "rs1", "A", "C")]))
    assert read_variants(tmp_path / "a.vcf.gz")[0][0].alt == "C"
    (tmp_path / "b.tsv").write_text("chrom\tpos\tref\talt\nchr1\t5\tg\ta\n")
    vs, fmt = read_variants(tmp_path / "b.tsv")
    assert fmt == "tsv" and (vs[0].chrom, vs[0].pos, vs[0].ref, vs[0].alt) == ("chr1", 5, "G", "A")
    (tmp_path / "junk.txt").write_text("hello world\nthis is not a vcf\n")
    with pytest.raises(InputError, match="not a VCF or TSV"):
        read_variants(tmp_path / "junk.txt")


def test_periodic_world_prefers_the_consistent_allele(tmp_path):
    """Exact (analytic) posterior denoiser of the world "PERIOD repeated at a random phase" -- not a trained
    model. The genome carries one corrupted base at 0-based 403; a variant restoring the period (ALT =
    periodic base) must score llr > 0 (favours ALT), a variant breaking it at a clean site llr < 0."""
    seq = list(PERIOD * 100)
    seq[403] = OTHER[seq[403]]
    g = Genome(write_fasta_text(tmp_path / "p.fa", {"per": "".join(seq)}))
    clean = PERIOD * 100
    from genodiff.generate.variants import Variant

    fix = Variant("per", 404, seq[403], clean[403])           # 1-based POS 404 = 0-based 403
    brk = Variant("per", 201, clean[200], OTHER[clean[200]])
    brk2 = Variant("per", 8, clean[7], OTHER[clean[7]])        # near the contig start: shifted window
    model = fake_model(periodic_denoiser)
    score_variants(model, [fix, brk, brk2], g, window=48, num_samples=16, method="auto", seed=0)
    assert fix.result["llr"] > 0 and brk.result["llr"] < 0 and brk2.result["llr"] < 0
    assert brk2.window == (0, 48)
    assert fix.result["z"] > 3 and brk.result["z"] < -3


def test_common_random_numbers_reduce_variance(tmp_path, tiny_run, genome_fa):
    """Paired draws: the llr standard error is far below that of two independent NELBO estimates."""
    from genodiff.interop.export import load_model
    from genodiff.generate.variants import Variant

    g = Genome(genome_fa)
    ref = g.fetch("chrA", 999, 1000)
    v = Variant("chrA", 1000, ref, OTHER[ref])
    model = load_model(tiny_run, "cpu")
    score_variants(model, [v], g, window=64, num_samples=16, method="auto", seed=0)
    assert np.isfinite(v.result["llr_stderr"])

    s = g.fetch("chrA", *v.window)
    x = torch.as_tensor(encode(s))[None]
    a = nelbo_with_draws(model.objective, model.denoiser, x, make_draws(16, 64, "num_masked", 1))
    b = nelbo_with_draws(model.objective, model.denoiser, x, make_draws(16, 64, "num_masked", 2))
    independent_se = float(np.hypot(float(a.stderr), float(b.stderr)))
    assert v.result["llr_stderr"] < 0.5 * independent_se


def test_variants_task_per_record_errors_and_exit_ok(tmp_path, tiny_run, genome_fa):
    g = Genome(genome_fa)
    r100 = g.fetch("chrA", 99, 100)
    r200 = g.fetch("chrA", 199, 200)
    rows = [("chrA", 100, "ok", r100, OTHER[r100] + "," + OTHER[OTHER[r100]]),
            ("chrA", 200, "badref", OTHER[r200], r200),
            ("chrZ", 5, "nocontig", "A", "C"),
            ("chrA", 6001, "offend", "A", "C"),
            ("chrA", 300, "indel", g.fetch("chrA", 299, 300), "AAA"),
            ("chrB", 2999, "edge", g.fetch("chrB", 2998, 2999), "T" if g.fetch("chrB", 2998, 2999) != "T" else "A")]
    (tmp_path / "v.vcf").write_text(vcf_text(rows))
    out = score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(tmp_path / "v.vcf"),
                              genome=str(genome_fa)))
    assert out["scored"] == 4 and out["errors"] == 3
    by_id = {}
    for r in out["rows"]:
        by_id.setdefault(r["id"], []).append(r)
    assert "disagrees" in by_id["badref"][0]["error"]
    assert "unknown contig" in by_id["nocontig"][0]["error"]
    assert "past the end" in by_id["offend"][0]["error"]
    assert not by_id["indel"][0]["error"] and by_id["indel"][0]["kind"] in ("ins", "complex")  # indels are scored
    assert by_id["edge"][0]["ref_window_end"] == 3000 and not by_id["edge"][0]["error"]
    tsv = (tmp_path / "out" / "variants.tsv").read_text()
    assert "llr = nelbo_ref - nelbo_alt" in tsv and "1-based" in tsv
    errors = (tmp_path / "out" / "variants.errors.tsv").read_text().splitlines()
    assert len(errors) == 1 + 3
    # all records bad -> one InputError line
    (tmp_path / "bad.vcf").write_text(vcf_text([("chrZ", 5, "x", "A", "C")]))
    with pytest.raises(InputError, match="no variant could be scored"):
        score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(tmp_path / "bad.vcf"),
                            genome=str(genome_fa)))
    with pytest.raises(InputError, match="genome"):
        score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(tmp_path / "bad.vcf")))


def test_trained_model_on_periodic_sequence_prefers_consistent_allele(tmp_path):
    """A tiny Caduceus-PS actually *trained* (train task, data=local, 120 steps, ~15 s) on (ACGTTGCA)*n gives
    the allele that keeps the period the better score (llr < 0 for every period-breaking ALT)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    from train_helpers import tiny_config

    from genodiff.interop.export import load_model
    from genodiff.generate.variants import Variant
    from genodiff.tasks import train

    fa = write_fasta_text(tmp_path / "per.fa", {"per": PERIOD * 2000})
    os.environ["GENODIFF_DATA"] = str(tmp_path / "cache")
    cfg = tiny_config("pretrain", tmp_path / "run", "data=local", f"data.fasta={fa}", "data.valid_tail_bp=1024",
                      "data.test_tail_bp=1024", "data.window=64", "max_steps=120", "val_every_n_steps=60",
                      "checkpoint_every_n_steps=60", "optim.lr=3e-3", "global_batch_size=16",
                      "max_per_device_batch_size=16")
    train.run(cfg)
    model = load_model(tmp_path / "run", "cpu")
    g = Genome(fa)
    clean = PERIOD * 2000
    variants = [Variant("per", p + 1, clean[p], OTHER[clean[p]]) for p in (500, 777, 1203)]
    score_variants(model, variants, g, window=64, num_samples=32, method="auto", seed=0)
    assert all(v.result["llr"] < 0 for v in variants), [v.result for v in variants]
