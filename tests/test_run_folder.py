"""Every job writes into one run folder chosen the same way (genodiff.tasks.run_folder.output_dir)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genodiff.config import compose_config
from genodiff.tasks.run_folder import output_dir

JOBS = ("finetune", "pretrain", "evaluate", "sample", "score", "analyze", "benchmark")


@pytest.mark.parametrize("job", JOBS)
def test_every_writing_job_has_output_dir_and_honours_it(job, tmp_path):
    cfg = compose_config(job, [f"output_dir={tmp_path / 'run'}"])
    assert output_dir(cfg) == tmp_path / "run"


def test_without_output_dir_outside_hydra_the_folder_is_outputs_job_time():
    folder = output_dir(OmegaConf.create({"job": "sample", "output_dir": None}))
    assert folder.parent == Path("outputs") / "sample"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", folder.name)
    assert output_dir(OmegaConf.create({}), "benchmark").parent == Path("outputs") / "benchmark"
