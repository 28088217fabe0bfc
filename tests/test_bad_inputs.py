"""Every malformed file in ``tests/bad_inputs/`` fails ``genodiff data prepare`` cleanly.

Each case runs the real CLI in a subprocess and checks: non-zero exit status, stderr is ONE non-empty
line that names the file (or the config key) and the problem, no traceback, and no file left behind in
the cache folder or the working directory.

How each kind of file is used:

* ``fasta_*``: ``genodiff data prepare <file>`` (a local FASTA dataset);
* ``bed_*``: ``genodiff data prepare <good small FASTA> intervals=<file>``;
* ``manifest_*``: ``genodiff data prepare <file>`` (a manifest path);
* ``config_*``: every ``key: value`` line becomes a ``key=value`` override of ``genodiff data prepare demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parent / "bad_inputs"
REPO = BAD.parents[1]

#: file -> substrings the error line must contain (besides the file name, checked for all but config_*)
EXPECTED: dict[str, tuple[str, ...]] = {
    "fasta_empty.fa": ("empty",),
    "fasta_no_header.fa": ("line 1", "header"),
    "fasta_duplicate_names.fa": ("line 6", "duplicate", "chr1"),
    "fasta_non_dna.fa": ("line 3", "non-DNA", "X"),
    "fasta_digits.fa": ("line 2", "non-DNA"),
    "fasta_space_in_sequence.fa": ("line 2", "non-DNA"),
    "fasta_inconsistent_wrapping.fa": ("line", "wrapping"),
    "fasta_mixed_crlf.fa": ("line 3", "line endings"),
    "fasta_empty_name.fa": ("line 1", "empty record name"),
    "fasta_no_sequence.fa": ("no sequence",),
    "fasta_truncated.fa.gz": ("truncated",),
    "fasta_corrupt.fa.gz": ("corrupt",),
    "bed_end_before_start.bed": ("line 2", "end"),
    "bed_negative_start.bed": ("line 1", "negative"),
    "bed_non_integer.bed": ("line 2", "integer"),
    "bed_float_coordinates.bed": ("line 2", "integer"),
    "bed_unknown_chromosome.bed": ("line 2", "chr7"),
    "bed_past_chromosome_end.bed": ("line 2", "chrS2"),
    "bed_too_few_columns.bed": ("line 2", "column"),
    "bed_empty.bed": ("no intervals",),
    "manifest_missing_keys.yaml": ("missing key", "masking"),
    "manifest_file_without_url.yaml": ("files[0]", "missing key 'url'"),
    "manifest_bad_checksum.yaml": ("files[0]", "md5", "hex"),
    "manifest_unknown_key.yaml": ("unknown key 'license'",),
    "manifest_invalid_yaml.yaml": ("line", "invalid YAML"),
    "config_unknown_key.yaml": ("batch_sise",),
    "config_unknown_nested_key.yaml": ("sead",),
    "config_bad_value.yaml": ("force", "maybe"),
}

GOOD_FASTA = ">chrS1\n" + "".join("ACGTTGCAAC" * 5 + "\n" for _ in range(20)) + ">chrS2\n" + \
             "".join("ggccaattAC" * 5 + "\n" for _ in range(10))  # chrS1 1000 bp, chrS2 500 bp


def test_corpus_is_complete():
    files = sorted(p.name for p in BAD.iterdir() if p.is_file())
    assert len(files) >= 20
    assert files == sorted(EXPECTED), "every file in tests/bad_inputs needs an EXPECTED entry and vice versa"


def _config_overrides(path: Path) -> list[str]:
    overrides = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, value = (part.strip() for part in line.split(":", 1))
            overrides.append(f"{key}={value}")
    return overrides


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input(name, tmp_path):
    path = BAD / name
    cache = tmp_path / "cache"
    work = tmp_path / "work"
    work.mkdir()
    args = ["data", "prepare"]
    if name.startswith("bed_"):
        good = tmp_path / "inputs" / "good.fa"
        good.parent.mkdir()
        good.write_text(GOOD_FASTA)
        args += [str(good), f"intervals={path}"]
    elif name.startswith("config_"):
        args += ["demo", *_config_overrides(path)]
    else:
        args += [str(path)]
    env = {**os.environ, "GENODIFF_DATA": str(cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "genodiff.cli", *args, f"cache_dir={cache}", "progress=false"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert len(lines) == 1, proc.stderr
    message = lines[0]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert message.startswith("genodiff: error:"), message
    if not name.startswith("config_"):
        assert name in message, message
    for expected in EXPECTED[name]:
        assert expected.lower() in message.lower(), f"{expected!r} not in {message!r}"
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers == [], leftovers
    assert list(work.iterdir()) == []
