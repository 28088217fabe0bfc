"""Resumable, verified, atomic downloads against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from genodiff.data.download import download_file, lookup_checksum, parse_checksum_file
from data_io_fixtures import http_server, small_genome, unused_port  # noqa: F401 (pytest fixtures)
from genodiff.errors import DownloadError


def _serve(server, genome, name="genome.fa"):
    shutil.copy(genome, server.root / name)
    data = genome.read_bytes()
    return name, data, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_download_verifies_and_renames(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    dest = tmp_path / "out" / name
    download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False)
    assert dest.read_bytes() == data
    assert not dest.with_name(name + ".part").exists()
    # a second call finds the verified file and does not download again
    n = len(http_server.requests)
    download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False)
    assert len(http_server.requests) == n


def test_interrupted_download_resumes_on_rerun(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    http_server.cut_after[name] = 50_000
    dest = tmp_path / name
    url = f"{http_server.url}/{name}"
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, algorithm="sha256", expected=sha, progress=False, retries=0)
    message = str(info.value)
    assert "\n" not in message and "interrupted" in message and "rerun" in message
    part = dest.with_name(name + ".part")
    assert part.stat().st_size == 50_000 and not dest.exists()
    download_file(url, dest, algorithm="sha256", expected=sha, progress=False, retries=0)
    assert dest.read_bytes() == data and not part.exists()
    assert http_server.requests[-1] == (name, "bytes=50000-")


def test_interruption_is_resumed_automatically(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    http_server.cut_after[name] = 12_345
    dest = tmp_path / name
    download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False, retries=2)
    assert dest.read_bytes() == data
    assert [r for _, r in http_server.requests] == [None, "bytes=12345-"]


def test_server_without_range_restarts_from_zero(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    http_server.ignore_range = True
    dest = tmp_path / name
    dest.with_name(name + ".part").write_bytes(data[:1000])
    download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False)
    assert dest.read_bytes() == data


def test_complete_part_file_is_accepted(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    dest = tmp_path / name
    dest.with_name(name + ".part").write_bytes(data)  # server answers 416 to the resume request
    download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False)
    assert dest.read_bytes() == data


def test_corrupted_file_is_rejected(http_server, small_genome, tmp_path):
    name, data, sha, _ = _serve(http_server, small_genome)
    corrupted = bytearray(data)
    corrupted[1000] ^= 0x20
    (http_server.root / name).write_bytes(bytes(corrupted))
    dest = tmp_path / "out" / name
    with pytest.raises(DownloadError) as info:
        download_file(f"{http_server.url}/{name}", dest, algorithm="sha256", expected=sha, progress=False)
    message = str(info.value)
    assert "checksum mismatch" in message and str(dest) in message and "\n" not in message
    assert list(dest.parent.iterdir()) == []  # neither the final file nor a .part file


def test_corrupted_resume_is_rejected_with_md5(http_server, small_genome, tmp_path):
    name, data, _, md5 = _serve(http_server, small_genome)
    dest = tmp_path / "out" / name
    dest.parent.mkdir()
    dest.with_name(name + ".part").write_bytes(b"X" * 100)  # garbage prefix from an earlier run
    with pytest.raises(DownloadError, match="md5 checksum mismatch"):
        download_file(f"{http_server.url}/{name}", dest, algorithm="md5", expected=md5, progress=False)
    assert list(dest.parent.iterdir()) == []
    download_file(f"{http_server.url}/{name}", dest, algorithm="md5", expected=md5, progress=False)
    assert dest.read_bytes() == data


def test_existing_bad_file_is_reported(small_genome, tmp_path):
    dest = tmp_path / "genome.fa"
    dest.write_bytes(b">x\nACGT\n")
    with pytest.raises(DownloadError, match="delete it and rerun"):
        download_file("http://127.0.0.1:9/genome.fa", dest, algorithm="sha256", expected="0" * 64, progress=False)
    assert dest.exists()  # a file placed by hand is never deleted silently


def test_offline_gives_one_clear_line(unused_port, tmp_path):
    url = f"http://127.0.0.1:{unused_port}/hg38.fa.gz"
    dest = tmp_path / "cache" / "hg38.fa.gz"
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, algorithm="md5", expected="0" * 32, progress=False, timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert url in message and str(dest) in message and "place it at" in message
    assert not dest.exists()


def test_http_404(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{http_server.url}/nothing.fa", tmp_path / "x.fa", progress=False)


def test_file_url(small_genome, tmp_path):
    data = small_genome.read_bytes()
    dest = tmp_path / "copy.fa"
    download_file(small_genome.resolve().as_uri(), dest, algorithm="sha256",
                  expected=hashlib.sha256(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data


def test_checksum_list(http_server, small_genome, tmp_path):
    name, data, _, md5 = _serve(http_server, small_genome, "hg38.fa.gz")
    (http_server.root / "md5sum.txt").write_text(f"{'1' * 32}  hg38.2bit\n{md5}  hg38.fa.gz\n")
    assert parse_checksum_file(f"{md5} *./x/hg38.fa.gz\n# comment\n") == {"hg38.fa.gz": md5}
    got = lookup_checksum(f"{http_server.url}/md5sum.txt", "hg38.fa.gz", tmp_path)
    assert got == md5
    with pytest.raises(DownloadError, match="lists no checksum for other.fa"):
        lookup_checksum(f"{http_server.url}/md5sum.txt", "other.fa", tmp_path)
