"""Fixtures of the app tests: a tiny exported model, a data folder (with a symbolic link that leads out of
it), settings, and one running server shared by the API, load and browser tests.

torch runs one thread here: tiny models on a shared 2-core machine are fastest that way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from app_helpers import free_port, make_settings, random_dna, tiny_export, write_fasta

from genodiff.app.jobs import Runner

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def export(tmp_path_factory) -> Path:
    return tiny_export(tmp_path_factory.mktemp("model") / "export")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """``genome.fa`` (chrA 3 kb, chrB 2 kb), ``sub/ref.fa``, and ``escape.fa``: a link to a file outside."""
    root = tmp_path_factory.mktemp("lab")
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    write_fasta(data / "genome.fa", {"chrA": random_dna(3000, 1), "chrB": random_dna(2000, 2)})
    write_fasta(data / "sub" / "ref.fa", {f"r{i}": random_dna(200, 10 + i) for i in range(4)})
    write_fasta(root / "secret.fa", {"secret": "ACGT" * 30})
    (data / "escape.fa").symlink_to(root / "secret.fa")
    return data


@pytest.fixture()
def runner(export, data_dir, tmp_path):
    r = Runner(make_settings(export, data_dir), tmp_path / "work")
    yield r
    r.close()


@pytest.fixture(scope="session")
def server(export, data_dir, tmp_path_factory):
    """A running app on a free local port (two jobs at once, one torch thread each) -> (url, runner)."""
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install -e '.[dev]')")
    from genodiff.app.ui import build_app, launch

    settings = make_settings(export, data_dir, port=free_port(), concurrency=2)
    runner = Runner(settings, tmp_path_factory.mktemp("serve_work"))
    demo = build_app(runner, "Model: tiny test model.")
    url = launch(demo, settings, block=False, quiet=True)
    yield url, runner
    demo.close()
    runner.close()
