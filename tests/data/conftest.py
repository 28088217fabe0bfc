"""Fixtures for the genome data layer tests: small generated FASTAs and the real chr2 slice."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest


from data_helpers import random_dna, write_fasta  # noqa: E402,F401


@pytest.fixture
def small_records() -> dict:
    """Three records with soft-masking, N runs (incl. all-N stretch) and an ambiguity code."""
    rng = np.random.default_rng(1234)
    chr1 = "N" * 300 + random_dna(rng, 2500) + "N" * 50 + random_dna(rng, 1000) + "NNNN"
    chr2 = random_dna(rng, 777) + "R" + random_dna(rng, 222) + "y"
    chrM = random_dna(rng, 123)
    return {"chr1": chr1, "chr2": chr2, "chrM": chrM}


@pytest.fixture
def small_fasta(tmp_path, small_records) -> Path:
    return write_fasta(tmp_path / "small.fa", small_records, width=60)


@pytest.fixture(scope="session")
def chr2_slice(shared_data) -> Path:
    p = shared_data / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="session")
def chr2_cache(chr2_slice, tmp_path_factory):
    from genodiff.data.genome.cache import build_encoded_cache
    return build_encoded_cache(chr2_slice, tmp_path_factory.mktemp("chr2cache") / "cache", progress=False)


@pytest.fixture(scope="session")
def chr2_plain(chr2_slice, tmp_path_factory) -> Path:
    """The chr2 slice decompressed to a plain FASTA (pyfaidx cannot index plain gzip)."""
    out = tmp_path_factory.mktemp("chr2plain") / "chr2.fa"
    with gzip.open(chr2_slice, "rb") as fi:
        out.write_bytes(fi.read())
    return out
