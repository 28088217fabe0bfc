"""``genodiff.tasks.data.run``: download / verify / prepare for manifests, the demo genome and local files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from genodiff.data import manifest as mf
from data_io_fixtures import http_server, small_genome, unused_port  # noqa: F401 (pytest fixtures)
from genodiff.errors import DownloadError, InputError
from genodiff.tasks import data as task

REPO = Path(__file__).resolve().parents[2]


def _cfg(action: str, dataset: str, cache: Path, *overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            return compose("data", overrides=[f"action={action}", f"dataset={dataset}", f"cache_dir={cache}",
                                              "progress=false", *overrides])
    finally:
        GlobalHydra.instance().clear()


def _toy_manifest(folder: Path, server_url: str, genome: Path, **file_extra) -> Path:
    data = genome.read_bytes()
    entry = {"name": "toy.fa", "role": "fasta", "url": f"{server_url}/toy.fa",
             "sha256": hashlib.sha256(data).hexdigest(), **file_extra}
    manifest = {"name": "toy", "description": "toy genome served on 127.0.0.1", "assembly": "none",
                "naming": "chrS1, chrS2", "masking": "soft-masked repeats", "licence": "Apache-2.0",
                "expect_lengths": {"chrS1": 80_000, "chrS2": 40_000}, "files": [entry]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def test_config_keys(tmp_path):
    cfg = _cfg("prepare", "demo", tmp_path)
    assert set(cfg) >= {"action", "dataset", "cache_dir", "manifest_dir", "fasta", "intervals", "force", "progress"}


def test_prepare_demo(tmp_path, capsys):
    cache = tmp_path / "cache"
    result = task.run(_cfg("prepare", "demo", cache))
    folder = cache / "demo"
    assert result["built"] and Path(result["encoded"]) == folder / "encoded"
    assert (folder / "demo.fa").is_file() and (folder / "demo_windows.bed").is_file()
    assert result["sequences"] == 2 and result["total_length"] == 3_000_000
    windows = result["intervals"][0]
    assert windows["rows"] > 50 and set(windows["by_name"]) == {"train", "valid", "test"}
    from genodiff.data.genome.cache import EncodedGenome

    genome = EncodedGenome.open(folder / "encoded")
    assert genome.lengths == {"demo_chr1": 2_000_000, "demo_chr2": 1_000_000}
    # second run: everything reused
    again = task.run(_cfg("prepare", "demo", cache))
    assert not again["built"]
    verify = task.run(_cfg("verify", "demo", cache))
    assert verify["ok"] and verify["prepared"]
    assert all(f["state"].startswith("verified") for f in verify["files"])
    out = capsys.readouterr().out
    assert "demo.fa: verified" in out and "demo_windows.bed: verified" in out
    row = next(r for r in mf.dataset_status(cache) if r["name"] == "demo")
    assert row["prepared"] and row["verified"] and row["state"] == "prepared"


def test_verify_reports_missing(tmp_path, capsys):
    with pytest.raises(InputError, match="1 of 1 files missing.*genodiff data download hg38"):
        task.run(_cfg("verify", "hg38", tmp_path))
    assert "hg38: hg38.fa.gz: missing" in capsys.readouterr().out


def test_download_verify_prepare_from_local_server(http_server, small_genome, tmp_path, capsys):
    shutil.copy(small_genome, http_server.root / "toy.fa")
    manifests = _toy_manifest(tmp_path / "manifests", http_server.url, small_genome).parent
    cache = tmp_path / "cache"
    result = task.run(_cfg("download", "toy", cache, f"manifest_dir={manifests}"))
    assert result["files"][0]["state"] == "verified (sha256)"
    assert (cache / "toy" / "toy.fa").read_bytes() == small_genome.read_bytes()
    result = task.run(_cfg("prepare", "toy", cache, f"manifest_dir={manifests}"))
    assert result["built"] and result["total_length"] == 120_000
    assert task.run(_cfg("verify", "toy", cache, f"manifest_dir={manifests}"))["ok"]
    # a corrupted cached file is reported by verify
    path = cache / "toy" / "toy.fa"
    path.write_bytes(path.read_bytes().replace(b"A", b"C", 1))
    with pytest.raises(InputError, match="failed verification"):
        task.run(_cfg("verify", "toy", cache, f"manifest_dir={manifests}"))
    assert "CHECKSUM MISMATCH" in capsys.readouterr().out


def test_manifest_path_as_dataset(http_server, small_genome, tmp_path):
    shutil.copy(small_genome, http_server.root / "toy.fa")
    manifest = _toy_manifest(tmp_path / "m", http_server.url, small_genome)
    result = task.run(_cfg("prepare", str(manifest), tmp_path / "cache"))
    assert result["dataset"] == "toy" and result["sequences"] == 2


def test_wrong_expected_length_fails_without_cache(http_server, small_genome, tmp_path):
    shutil.copy(small_genome, http_server.root / "toy.fa")
    manifest = _toy_manifest(tmp_path / "m", http_server.url, small_genome)
    data = yaml.safe_load(manifest.read_text())
    data["expect_lengths"]["chrS1"] = 12345
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="chrS1 has length 80000, manifest expects 12345"):
        task.run(_cfg("prepare", str(manifest), tmp_path / "cache"))
    folder = tmp_path / "cache" / "toy"
    assert sorted(p.name for p in folder.iterdir()) == ["toy.fa", "toy.fa.verified"]  # no encoded cache


def test_corrupted_download_rejected(http_server, small_genome, tmp_path):
    (http_server.root / "toy.fa").write_bytes(small_genome.read_bytes()[:-10] + b"ACGTACGTA\n")
    manifests = _toy_manifest(tmp_path / "manifests", http_server.url, small_genome).parent
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="sha256 checksum mismatch"):
        task.run(_cfg("download", "toy", cache, f"manifest_dir={manifests}"))
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_offline_download_one_line(unused_port, small_genome, tmp_path):
    manifests = _toy_manifest(tmp_path / "manifests", f"http://127.0.0.1:{unused_port}", small_genome).parent
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        task.run(_cfg("prepare", "toy", cache, f"manifest_dir={manifests}", "timeout=5"))
    message = str(info.value)
    assert "\n" not in message and f"127.0.0.1:{unused_port}/toy.fa" in message
    assert f"place it at {cache / 'toy' / 'toy.fa'}" in message


def test_checksum_from_published_list(http_server, small_genome, tmp_path):
    data = small_genome.read_bytes()
    shutil.copy(small_genome, http_server.root / "toy.fa")
    (http_server.root / "md5sum.txt").write_text(f"{hashlib.md5(data).hexdigest()}  toy.fa\n{'0' * 32}  other\n")
    manifest = _toy_manifest(tmp_path / "m", http_server.url, small_genome, checksum_url=f"{http_server.url}/md5sum.txt",
                             checksum_algorithm="md5")
    text = yaml.safe_load(manifest.read_text())
    del text["files"][0]["sha256"]
    manifest.write_text(yaml.safe_dump(text))
    result = task.run(_cfg("download", str(manifest), tmp_path / "cache"))
    assert result["files"][0]["state"] == "verified (md5)"
    # the published list disagrees with the served file -> rejected
    (http_server.root / "md5sum.txt").write_text(f"{'f' * 32}  toy.fa\n")
    with pytest.raises(DownloadError, match="md5 checksum mismatch"):
        task.run(_cfg("download", str(manifest), tmp_path / "cache2"))


def _basenji_like(tmp_path, server, genome, rows):
    bed = "".join(f"chrS1\t{i * 1000}\t{i * 1000 + 1000}\t{name}\n" for i, name in enumerate(rows))
    (server.root / "seqs.bed").write_text(bed)
    shutil.copy(genome, server.root / "toy.fa")
    manifest = {"name": "toyb", "description": "d", "assembly": "a", "naming": "n", "masking": "m", "licence": "l",
                "files": [{"name": "toy.fa", "role": "fasta", "url": f"{server.url}/toy.fa", "unverified": "none published"},
                          {"name": "seqs.bed", "role": "intervals", "url": f"{server.url}/seqs.bed",
                           "unverified": "none published", "expect_rows": {"train": 3, "valid": 1, "test": 1},
                           "expect_interval_length": 1000}]}
    path = tmp_path / "toyb.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_unverified_files_are_pinned_and_checked(http_server, small_genome, tmp_path):
    manifest = _basenji_like(tmp_path, http_server, small_genome, ["train", "valid", "train", "test", "train"])
    cache = tmp_path / "cache"
    result = task.run(_cfg("prepare", str(manifest), cache))
    assert result["intervals"][0]["by_name"] == {"train": 3, "valid": 1, "test": 1}
    assert mf.read_stamp(cache / "toyb" / "toy.fa")["pinned"]
    verify = task.run(_cfg("verify", str(manifest), cache))
    assert "pinned locally" in verify["files"][0]["state"]


def test_interval_counts_rejected(http_server, small_genome, tmp_path):
    manifest = _basenji_like(tmp_path, http_server, small_genome, ["train", "valid", "train", "test"])
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="seqs.bed has 2 'train' rows, expected 3"):
        task.run(_cfg("prepare", str(manifest), cache))
    assert not (cache / "toyb" / "seqs.bed").exists() and not (cache / "toyb" / "seqs.bed.part").exists()


def test_local_fasta_with_intervals(small_genome, tmp_path):
    bed = tmp_path / "w.bed"
    bed.write_text("chrS1\t0\t1000\ttrain\nchrS2\t39000\t40000\ttest\n")
    cache = tmp_path / "cache"
    result = task.run(_cfg("prepare", str(small_genome), cache, f"intervals={bed}"))
    assert result["dataset"] == "small" and Path(result["encoded"]) == cache / "local" / "small" / "encoded"
    assert result["intervals"][0]["rows"] == 2
    named = task.run(_cfg("prepare", "mygenome", cache, f"fasta={small_genome}"))
    assert Path(named["encoded"]) == cache / "local" / "mygenome" / "encoded"
    assert any(r["name"] == "local/mygenome" for r in mf.dataset_status(cache))


def test_bad_cfg_values(tmp_path):
    with pytest.raises(InputError, match="config key 'action'"):
        task.run(_cfg("prepare", "demo", tmp_path, "action=explode"))
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        task.run(_cfg("prepare", "nope", tmp_path))


def test_shared_chr2_slice(shared_data, tmp_path):
    fasta = shared_data / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
    result = task.run(_cfg("prepare", str(fasta), tmp_path / "cache"))
    assert result["total_length"] == 2_000_000 and result["summary"]["n"] == 10_000
    assert result["summary"]["soft_masked"] == 725_560


def test_cli_prepare_demo(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "GENODIFF_DATA": str(cache), "PYTHONPATH": str(REPO)}
    for action in ("prepare", "verify"):
        proc = subprocess.run([sys.executable, "-m", "genodiff.cli", "data", action, "demo"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "demo.fa: verified" in proc.stdout
    assert (cache / "demo" / "encoded" / "index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no per-run output folder


def test_prepare_dataset_helper_and_paths(tmp_path):
    cache = tmp_path / "cache"
    result = task.prepare_dataset("demo", cache_dir=str(cache), demo={"seed": 0, "window": 16384})
    paths = mf.dataset_paths("demo", cache)
    assert Path(result["encoded"]) == paths["encoded"] and paths["intervals"].is_file()
    lengths = {int(line.split("\t")[2]) - int(line.split("\t")[1]) for line in paths["intervals"].read_text().splitlines()}
    assert lengths == {16384}
    with pytest.raises(InputError, match="unknown config key"):
        task.prepare_dataset("demo", cache_dir=str(cache), colour="red")


def test_cli_offline_one_line(unused_port, small_genome, tmp_path):
    manifest = _toy_manifest(tmp_path / "m", f"http://127.0.0.1:{unused_port}", small_genome)
    cache = tmp_path / "cache"
    env = {**os.environ, "GENODIFF_DATA": str(cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "genodiff.cli", "data", "download", str(manifest), "timeout=5"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("genodiff: error: cannot download http://127.0.0.1:")
    assert f"place it at {cache / 'toy' / 'toy.fa'}" in lines[0]
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_manifest_aliases_used_for_intervals(http_server, small_genome, tmp_path):
    shutil.copy(small_genome, http_server.root / "toy.fa")
    manifest = _toy_manifest(tmp_path / "m", http_server.url, small_genome)
    data = yaml.safe_load(manifest.read_text())
    data["aliases"] = {"chrS1": ["NC_S1"]}
    manifest.write_text(yaml.safe_dump(data))
    bed = tmp_path / "a.bed"
    bed.write_text("NC_S1\t0\t100\ttrain\nS2\t0\t100\ttest\n")  # alias + automatic chr toggling
    result = task.run(_cfg("prepare", str(manifest), tmp_path / "cache", f"intervals={bed}"))
    assert result["intervals"][0]["rows"] == 2


def test_offline_checksum_list_says_what_to_place(unused_port, small_genome, tmp_path):
    base = f"http://127.0.0.1:{unused_port}"
    manifest = _toy_manifest(tmp_path / "m", base, small_genome, checksum_url=f"{base}/md5sum.txt",
                             checksum_algorithm="md5")
    text = yaml.safe_load(manifest.read_text())
    del text["files"][0]["sha256"]
    manifest.write_text(yaml.safe_dump(text))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        task.run(_cfg("prepare", str(manifest), cache, "timeout=5"))
    message = str(info.value)
    assert "published checksums" in message and "\n" not in message
    assert str(cache / "toy" / "toy.fa") in message and str(cache / "toy" / "md5sum.txt") in message
