"""Dataset manifests: the shipped ones are valid and complete; bad ones fail with one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genodiff.data import manifest as mf
from genodiff.errors import InputError

GOOD = {
    "name": "toy", "description": "a toy", "assembly": "none", "naming": "chrS1", "masking": "none",
    "licence": "CC0", "files": [{"name": "toy.fa", "role": "fasta", "url": "file:///x/toy.fa", "sha256": "a" * 64}],
}


def _write(tmp_path: Path, data, name="toy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_shipped_manifests():
    names = mf.manifest_names()
    assert {"demo", "hg38", "hg38_basenji"} <= set(names)
    for name in names:
        m = mf.load_manifest(name)
        assert m.name == name
        assert m.assembly and m.naming and m.masking and m.licence
        assert m.file("fasta") is not None


def test_hg38_sources():
    hg38 = mf.load_manifest("hg38").file("fasta")
    assert hg38.url.endswith("/goldenPath/hg38/bigZips/hg38.fa.gz")
    assert hg38.checksum_url.endswith("/goldenPath/hg38/bigZips/md5sum.txt") and hg38.algorithm == "md5"
    basenji = mf.load_manifest("hg38_basenji")
    assert basenji.file("fasta").url == "https://storage.googleapis.com/basenji_barnyard2/hg38.ml.fa.gz"
    bed = basenji.file("intervals")
    assert bed.url == "https://storage.googleapis.com/basenji_barnyard2/sequences_human.bed"
    assert bed.expect_rows == {"train": 34021, "valid": 2213, "test": 1937}
    assert bed.expect_interval_length == 131072
    assert mf.load_manifest("hg38").aliases["chr1"] == ["NC_000001.11"]
    assert mf.dataset_paths("hg38_basenji")["intervals"].name == "sequences_human.bed"


def test_good_manifest_from_path(tmp_path):
    m = mf.load_manifest(str(_write(tmp_path, GOOD)))
    assert m.name == "toy" and m.files[0].algorithm == "sha256"


@pytest.mark.parametrize("key", ["name", "description", "assembly", "naming", "masking", "licence", "files"])
def test_missing_top_key(tmp_path, key):
    data = dict(GOOD)
    del data[key]
    path = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        mf.load_manifest_file(path)
    assert str(path) in str(info.value) and f"missing key '{key}'" in str(info.value)


@pytest.mark.parametrize(("change", "expected"), [
    ({"url": None}, "missing key 'url'"),
    ({"sha256": None}, "missing key 'md5', 'sha256' or 'checksum_url'"),
    ({"sha256": "xyz"}, "key 'sha256' must be 64 hex digits"),
    ({"role": "genome"}, "key 'role' must be one of"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"url": "ftp://x/toy.fa"}, "key 'url' must be"),
    ({"checksum_url": "https://x/md5sum.txt"}, "give either 'sha256' or 'checksum_url'"),
])
def test_bad_file_entry(tmp_path, change, expected):
    entry = {**GOOD["files"][0], **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    path = _write(tmp_path, {**GOOD, "files": [entry]})
    with pytest.raises(InputError) as info:
        mf.load_manifest_file(path)
    message = str(info.value)
    assert f"{path}: files[0]" in message and expected in message and "\n" not in message


def test_invalid_yaml_names_line(tmp_path):
    path = _write(tmp_path, "name: toy\nfiles: [\n  - oops: :\n")
    with pytest.raises(InputError, match=r"toy\.yaml line \d+: invalid YAML"):
        mf.load_manifest_file(path)


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'nope'.*demo"):
        mf.load_manifest("nope")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GENODIFF_DATA", str(tmp_path / "c"))
    assert mf.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GENODIFF_DATA")
    path = mf.default_cache_dir()
    assert path.name == "genodiff" and path.is_absolute()


def test_dataset_status_empty_and_stamped(tmp_path):
    rows = {r["name"]: r for r in mf.dataset_status(tmp_path)}
    assert rows["hg38"]["state"] == "not downloaded" and not rows["hg38"]["present"]
    folder = tmp_path / "hg38"
    folder.mkdir()
    f = folder / "hg38.fa.gz"
    f.write_bytes(b"x")
    rows = {r["name"]: r for r in mf.dataset_status(tmp_path)}
    assert rows["hg38"]["files"] == [{"name": "hg38.fa.gz", "present": True, "verified": False}]
    mf.write_stamp(f, "md5", "0" * 32)
    rows = {r["name"]: r for r in mf.dataset_status(tmp_path)}
    assert rows["hg38"]["verified"] and rows["hg38"]["state"] == "downloaded, verified"
    f.write_bytes(b"xy")  # changed after verification: stamp no longer valid
    assert not {r["name"]: r for r in mf.dataset_status(tmp_path)}["hg38"]["verified"]
