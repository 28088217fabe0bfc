"""Fixtures for the generate / score / analyze tests.

``tiny_run``: a real exported checkpoint (tiny Caduceus-PS + MDLM, a few training steps on a small local
FASTA) trained once per session in a few seconds. Plain helpers live in ``gen_helpers.py``; test modules import
them from there, not from ``conftest`` (with several test folders on one command line ``conftest`` can name
another folder's conftest). ``torch`` runs single-threaded here: on a shared 2-core machine multi-threaded
tiny matmuls are ~50x slower than one thread.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from gen_helpers import random_dna, write_fasta_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def genome_fa(tmp_path_factory) -> Path:
    """A 2-contig random genome (chrA 6 kb, chrB 3 kb)."""
    d = tmp_path_factory.mktemp("genome")
    return write_fasta_text(d / "genome.fa", {"chrA": random_dna(6000, 1), "chrB": random_dna(3000, 2)})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, genome_fa) -> Path:
    """Run folder of a tiny MDLM model trained for 6 steps on ``genome_fa`` (data=local)."""
    from train_helpers import tiny_config

    from genodiff.tasks import train

    d = tmp_path_factory.mktemp("tiny_run")
    old = os.environ.get("GENODIFF_DATA")
    os.environ["GENODIFF_DATA"] = str(d / "cache")
    try:
        cfg = tiny_config("pretrain", d / "run", "data=local", f"data.fasta={genome_fa}", "data.valid_tail_bp=512",
                          "data.test_tail_bp=1024", "data.window=128")
        train.run(cfg)
    finally:
        if old is None:
            os.environ.pop("GENODIFF_DATA", None)
        else:
            os.environ["GENODIFF_DATA"] = old
    return d / "run"
