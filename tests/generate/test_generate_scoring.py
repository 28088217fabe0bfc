"""Likelihood scoring: RC equivariance, agreement with the diffusion core and with ``genodiff evaluate``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _job_config import job_config
from gen_helpers import random_dna, write_fasta_text
from genodiff.data.genome.tokenizer import reverse_complement, reverse_complement_ids
from genodiff.diffusion.likelihood import estimate_nelbo
from genodiff.errors import InputError
from genodiff.generate.conditioning import decode, encode
from genodiff.interop.export import load_model
from genodiff.generate.scoring import make_draws, nelbo_with_draws, pick_method
from genodiff.tasks import score



def score_cfg(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "out"), "num_samples": 16, "progress": False}
    return job_config("score", **{**base, **overrides})


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return load_model(tiny_run, "cpu")


def test_rc_equivariant_model_same_draws_mirrored_equal(tiny):
    """Caduceus-PS is exactly RC-equivariant: with mirrored draws, x and rc(x) score the same per draw."""
    assert tiny.spec["model"]["rcps"]
    x = torch.as_tensor(np.stack([encode(random_dna(96, s)) for s in range(3)]))
    d = make_draws(8, 96, pick_method(tiny.objective), 0)
    a = nelbo_with_draws(tiny.objective, tiny.denoiser, x, d)
    b = nelbo_with_draws(tiny.objective, tiny.denoiser, reverse_complement_ids(x), d.mirrored())
    torch.testing.assert_close(b.samples, a.samples, rtol=1e-5, atol=1e-3)


def test_rc_equivariant_model_equal_in_expectation(tiny):
    """Independent draws: the two estimates agree within their standard errors (equal in expectation)."""
    seq = random_dna(96, 7)
    x = torch.as_tensor(encode(seq))[None]
    xr = torch.as_tensor(encode(reverse_complement(seq)))[None]
    a = nelbo_with_draws(tiny.objective, tiny.denoiser, x, make_draws(64, 96, "num_masked", 1))
    b = nelbo_with_draws(tiny.objective, tiny.denoiser, xr, make_draws(64, 96, "num_masked", 2))
    se = math.sqrt(float(a.stderr) ** 2 + float(b.stderr) ** 2)
    assert abs(float(a.nelbo) - float(b.nelbo)) < 4 * se


@pytest.mark.parametrize("method", ["num_masked", "antithetic"])
def test_agrees_with_estimate_nelbo(tiny, method):
    x = torch.as_tensor(np.stack([encode(random_dna(64, s)) for s in range(4)]))
    mine = nelbo_with_draws(tiny.objective, tiny.denoiser, x, make_draws(48, 64, method, 3))
    core = estimate_nelbo(tiny.objective, tiny.denoiser, x, None, 48, method,
                          generator=torch.Generator().manual_seed(4))
    se = (mine.stderr ** 2 + core.stderr ** 2).sqrt()
    assert bool(((mine.nelbo - core.nelbo).abs() < 4.5 * se).all())


def test_score_task_agrees_with_evaluate(tmp_path, tiny_run, genome_fa):
    """Same windows (evaluate's test split), same model: nats/base agree within the standard errors."""
    from genodiff.tasks import evaluate
    from genodiff.training.datamodule import GenomeDataConfig, GenomeDataModule

    data = {"dataset": None, "fasta": str(genome_fa), "intervals": None, "cache_dir": str(tmp_path / "c"),
            "window": 128, "train_stride": None, "eval_stride": None, "valid_tail_bp": 512, "test_tail_bp": 1024,
            "rc_prob": 0.0, "max_n_fraction": 0.5, "max_eval_windows": 8, "num_workers": 0, "seed": 0,
            "split_mapping": {}}
    eval_cfg = job_config("evaluate")
    eval_cfg.data = data
    eval_cfg.checkpoints = [str(tiny_run)]
    eval_cfg.markov_orders = []
    eval_cfg.num_samples = 32
    eval_cfg.output_dir = str(tmp_path / "eval")
    ev = evaluate.run(eval_cfg)["rows"][0]
    dm = GenomeDataModule(GenomeDataConfig(**data), batch_size=8)
    dm.setup()
    windows = [decode(w) if isinstance(w, np.ndarray) else w for w in dm.split_sequences("test")]
    fa = write_fasta_text(tmp_path / "test.fa", {f"w{i}": s for i, s in enumerate(windows)})
    sc = score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(fa), num_samples=32))
    assert sc["scored_bases"] == ev["tokens"]
    se = math.hypot(sc["nats_per_base_stderr"], ev["nats_per_base_stderr"])
    assert abs(sc["nats_per_base"] - ev["nats_per_base"]) < 4 * se + 1e-3
    tsv = (tmp_path / "out" / "scores.tsv").read_text().splitlines()
    header = [line for line in tsv if not line.startswith("#")][0].split("\t")
    assert header[:5] == ["id", "length", "scored_bases", "nelbo_nats", "nelbo_stderr"]


def test_score_sequences_windows_and_n(tmp_path, tiny_run):
    fa = write_fasta_text(tmp_path / "in.fa", {"a": random_dna(100, 1), "b": "NNNN" + random_dna(60, 2) + "NN"})
    out = score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(fa), chunk=64, num_samples=4))
    rows = {r["id"]: r for r in out["rows"]}
    assert rows["a"]["scored_bases"] == 100 and rows["b"]["scored_bases"] == 60
    assert all(r["bits_per_base"] > 0 and r["nelbo_stderr"] >= 0 for r in rows.values())


def test_score_bad_inputs(tmp_path, tiny_run):
    with pytest.raises(InputError, match="input"):
        score.run(score_cfg(tmp_path, checkpoint=str(tiny_run)))
    (tmp_path / "x.txt").write_text("not fasta\n")
    with pytest.raises(InputError, match="not a FASTA"):
        score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(tmp_path / "x.txt")))
    with pytest.raises(InputError, match="num_samples"):
        score.run(score_cfg(tmp_path, checkpoint=str(tiny_run), input=str(tmp_path / "x.txt"), num_samples=1))


def test_evaluate_refuses_one_sample_and_never_prints_a_zero_stderr(tmp_path, tiny_run, genome_fa, tiny):
    """K = 1 has no standard error: ``evaluate`` refuses it (like ``score``), the library reports it as NaN
    (unavailable, not 0), and the report prints n/a, never "± 0.0000". Rows say whether they are bounds."""
    from genodiff.generate.scoring import nelbo_on_batches
    from genodiff.tasks import evaluate

    data = {"dataset": None, "fasta": str(genome_fa), "intervals": None, "cache_dir": str(tmp_path / "c"),
            "window": 128, "train_stride": None, "eval_stride": None, "valid_tail_bp": 512, "test_tail_bp": 1024,
            "rc_prob": 0.0, "max_n_fraction": 0.5, "max_eval_windows": 2, "num_workers": 0, "seed": 0,
            "split_mapping": {}}
    cfg = job_config("evaluate")
    cfg.data, cfg.checkpoints, cfg.markov_orders = data, [str(tiny_run)], [0]
    cfg.output_dir = str(tmp_path / "eval")
    cfg.num_samples = 1
    with pytest.raises(InputError, match="num_samples: need >= 2"):
        evaluate.run(cfg)
    assert not (tmp_path / "eval").exists()
    x = torch.as_tensor(np.stack([encode(random_dna(64, s)) for s in range(2)]))
    one = nelbo_on_batches(tiny.denoiser, tiny.objective, [x], 1, "num_masked", 0)
    assert math.isnan(one["nats_per_base_stderr"]) and math.isfinite(one["nats_per_base"])
    two = nelbo_on_batches(tiny.denoiser, tiny.objective, [x], 2, "num_masked", 0)
    assert two["nats_per_base_stderr"] > 0 and two["likelihood"] == "upper bound"
    row = {"model": "m", "kind": "model", "estimator": "num_masked", **one}
    report = evaluate.render_report({"split": "test", "data": "d", "windows": 1, "window": 64, "num_samples": 1,
                                     "rows": [row], "markov": None})
    assert "| n/a |" in report and "0.0000 |" not in report.split("| m |")[1]
    # with K = 2 the run goes through; every row says whether its number is a bound or exact
    cfg.num_samples = 2
    rows = evaluate.run(cfg)["rows"]
    assert [r["likelihood"] for r in rows] == ["upper bound", "exact"]
    csv_text = (tmp_path / "eval" / "results.csv").read_text().splitlines()
    assert csv_text[0].endswith(",likelihood") and csv_text[1].endswith(",upper bound")
    assert "| num_masked | upper bound |" in (tmp_path / "eval" / "report.md").read_text()


@pytest.mark.parametrize("schedule", [{"name": "loglinear", "eps": 0.2},
                                      {"name": "geometric", "sigma_min": 0.3, "sigma_max": 20.0}],
                         ids=["loglinear_eps", "geometric_wide"])
def test_nelbo_with_draws_is_a_bound_when_alpha_ends_are_not_0_and_1(schedule):
    """Score's antithetic estimator with alpha(1) = 0.2 (log-linear eps = 0.2) or alpha(0) = e^-0.3 (geometric):
    unbiased for the bound of the sampled model (conditioned on all-[MASK] at t = 1, plus the reconstruction at
    t = 0; for the exact denoiser and alpha(0) = 1 that is -log p(x)), not for the lower plain integral it
    estimated before."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diffusion"))
    from _helpers import exact_bound, quadrature_nelbo

    from genodiff.diffusion.objectives import MDLMObjective
    from genodiff.diffusion.testing import TinyWorld

    world = TinyWorld.random(3, 3, seed=45)
    obj = MDLMObjective(vocab=world.vocab, schedule=schedule, time_conditioning=True)
    target = exact_bound(obj, world.denoiser, world, n=128)
    plain = quadrature_nelbo(obj, world.denoiser, world, n=128)
    if schedule["name"] == "loglinear":
        torch.testing.assert_close(target, -torch.log(world.probs), atol=1e-6, rtol=0)
    diffs, diffs_plain, var = 0.0, 0.0, 0.0
    for seed in range(20):
        est = nelbo_with_draws(obj, world.denoiser, world.sequences, make_draws(32, world.L, "antithetic", seed))
        diffs += float((est.nelbo - target).sum())
        diffs_plain += float((est.nelbo - plain).sum())
        var += float(est.stderr.pow(2).sum())
    assert abs(diffs / math.sqrt(var)) < 3.0, diffs / math.sqrt(var)
    assert diffs_plain / math.sqrt(var) > 6, diffs_plain / math.sqrt(var)  # negative control: the plain integral
