"""``genodiff serve`` from the command line: it serves a working app until Ctrl-C and cleans up after itself; a bad
checkpoint, a bad key or a missing gradio is one error line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from app_helpers import free_port, read_fasta_text

from genodiff.cli import main

gradio_client = pytest.importorskip("gradio_client",
                                    reason="the app tests need gradio_client (pip install -e '.[dev]')")
httpx = pytest.importorskip("httpx")


@pytest.mark.slow  # a second interpreter importing torch and gradio: ~15 s idle, ~2 min on a loaded 2-core machine
def test_genodiff_serve_serves_the_app_until_interrupted(export, tmp_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "genodiff.cli", "serve", f"checkpoint={export}", f"port={port}",
                             "num_threads=1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                page = httpx.get(url, timeout=5)
                if page.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "genodiff serve did not answer within 300 s"
            time.sleep(0.5)
        assert httpx.get(f"{url}config", timeout=30).json()["title"] == "genodiff"
        client = gradio_client.Client(url, verbose=False)
        _, _, preview = client.predict(1, 24, "cached", "dilated", 4, 3, "", 0.02, api_name="/generate")
        (_, seq), = read_fasta_text(preview).values()
        assert len(seq) == 24
        assert list(tmp_path.glob("genodiff-serve-*/req-*"))  # the request folder, in the server's private root
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), out
    assert "Traceback" not in out
    assert not list(tmp_path.glob("genodiff-serve-*"))  # request folders removed at exit
    assert (tmp_path / "outputs" / "serve").is_dir()  # the run folder holds the resolved config


def test_bad_checkpoint_and_bad_key_are_one_line(tmp_path, capsys, monkeypatch, export):
    pytest.importorskip("gradio")
    monkeypatch.chdir(tmp_path)
    assert main(["serve", f"checkpoint={tmp_path / 'nothing'}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("genodiff: error: ") and f"{tmp_path / 'nothing'}" in err[0]
    assert main(["serve", "limits.max_lenght=5"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "max_lenght" in err[0]
    assert main(["serve", f"checkpoint={export}", f"classifier={export}"]) == 2  # a generator, not a classifier
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("genodiff: error: classifier: ") and "noise-aware" in err[0]


def test_missing_gradio_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["genodiff: error: serve: the web app needs gradio; install it with pip install 'genodiff[app]'"]
