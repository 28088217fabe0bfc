"""``genodiff sample`` and ``genodiff score variants`` through the real CLI (exit status 0 with per-record errors).

Malformed inputs raising one InputError line are tested in-process (test_generate_variants.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "genodiff.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow  # two CLI subprocesses: ~15 s idle, ~60 s on a loaded 2-core machine
def test_cli_sample_and_score_variants(tmp_path, tiny_run, genome_fa):
    r = _cli("sample", "dna", f"checkpoint={tiny_run}", "num_samples=2", "length=40", "steps=4", "progress=false",
             "num_threads=1", f"output_dir={tmp_path / 's'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "samples.fa").read_text().startswith(">sample_0 model=")
    from genodiff.data.genome.reference import Genome

    ref = Genome(genome_fa).fetch("chrA", 49, 50)
    (tmp_path / "v.tsv").write_text(f"chrA\t50\t{ref}\t{'A' if ref != 'A' else 'C'}\nchrQ\t1\tA\tC\n")
    r = _cli("score", "variants", f"checkpoint={tiny_run}", f"input={tmp_path / 'v.tsv'}", f"genome={genome_fa}",
             "window=32", "num_samples=4", "progress=false", "num_threads=1", f"output_dir={tmp_path / 'v'}",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # one good record is enough
    assert "1 errors" in r.stdout
