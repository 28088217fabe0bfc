"""A checkpoint whose weights hold NaN: ``genodiff sample`` / ``score`` / ``evaluate`` stop with one error line
(exit status 2, no traceback) and write no output file. Before, sampling wrote a FASTA of [CLS]-derived junk
and scoring wrote NaN scores."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from _job_config import job_config
from gen_helpers import random_dna, write_fasta_text
from genodiff.cli import main
from genodiff.errors import NonFiniteError
from genodiff.interop.export import WEIGHTS_NAME, resolve_export
from genodiff.tasks import evaluate, score



@pytest.fixture(scope="module")
def nan_export(tiny_run, tmp_path_factory) -> Path:
    """The tiny run's export with one weight tensor set to NaN (the weights file is still valid safetensors)."""
    folder = tmp_path_factory.mktemp("nan") / "export"
    shutil.copytree(resolve_export(tiny_run), folder)
    weights = load_file(str(folder / WEIGHTS_NAME))
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.ndim == 2)
    weights[name] = weights[name] * float("nan")
    save_file(weights, str(folder / WEIGHTS_NAME))
    return folder


@pytest.mark.parametrize("sampler", ["cached", "first_hitting"])
def test_cli_sample_with_nan_weights_is_one_line_and_writes_no_fasta(nan_export, tmp_path, capsys, monkeypatch,
                                                                      sampler):
    monkeypatch.chdir(tmp_path)  # Hydra's run folder (outputs/...) lands here
    out = tmp_path / "out"
    code = main(["sample", "dna", f"checkpoint={nan_export}", "num_samples=2", "length=32", "steps=4",
                 f"sampler={sampler}", "progress=false", "num_threads=1", f"output_dir={out}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("genodiff: error: checkpoint "), err
    assert re.search(rf"{sampler} sampler, step \d+ of \d+", lines[0]) and "NaN" in lines[0], err
    assert "Traceback" not in err
    assert not any(tmp_path.rglob("*.fa")) and not any(tmp_path.rglob("*.json"))


def test_cli_sample_with_finite_weights_still_writes(tiny_run, tmp_path, capsys, monkeypatch):
    """Control: the same command on the intact export succeeds."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["sample", "dna", f"checkpoint={tiny_run}", "num_samples=2", "length=32", "steps=4",
                 "progress=false", "num_threads=1", f"output_dir={out}"])
    assert code == 0, capsys.readouterr().err
    assert (out / "samples.fa").is_file()


def test_score_and_evaluate_with_nan_weights_raise_and_write_nothing(nan_export, tmp_path, genome_fa):
    fa = write_fasta_text(tmp_path / "in.fa", {"a": random_dna(64, 1)})
    out = tmp_path / "score"
    with pytest.raises(NonFiniteError, match=r"checkpoint .*non-finite NELBO"):
        score.run(job_config("score", checkpoint=str(nan_export), input=str(fa), num_samples=4, progress=False,
                       output_dir=str(out)))
    assert not out.exists() or not any(out.iterdir())
    data = {"dataset": None, "fasta": str(genome_fa), "intervals": None, "cache_dir": str(tmp_path / "c"),
            "window": 128, "train_stride": None, "eval_stride": None, "valid_tail_bp": 512, "test_tail_bp": 1024,
            "rc_prob": 0.0, "max_n_fraction": 0.5, "max_eval_windows": 2, "num_workers": 0, "seed": 0,
            "split_mapping": {}}
    out = tmp_path / "eval"
    with pytest.raises(NonFiniteError, match=r"checkpoint .*batch 0: .*draw 1 of 2"):
        evaluate.run(job_config("evaluate", data=data, checkpoints=[str(nan_export)], markov_orders=[], num_samples=2,
                          output_dir=str(out)))
    assert not out.exists() or not any(out.iterdir())
