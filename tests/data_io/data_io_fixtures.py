"""Fixtures for the data I/O tests (imported by the test modules; not a conftest.py so that it cannot shadow
another folder's ``conftest`` module): a local HTTP server (127.0.0.1 only) and a small generated genome."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _Server:
    """Serves files from a folder on 127.0.0.1 with Range support and fault injection.

    ``cut_after[name] = n``: the first request for ``name`` sends the full headers but only ``n`` body
    bytes, then closes the connection. ``ignore_range``: answer 200 with the whole body.
    ``requests`` records ``(path, Range header)`` of every request.
    """

    def __init__(self, root: Path):
        self.root = root
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                path = server.root / name
                if not path.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = path.read_bytes()
                start, status = 0, 200
                if rng and not server.ignore_range:
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Connection", "close")
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with _Server(root) as server:
        yield server


@pytest.fixture
def unused_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def small_genome(tmp_path_factory) -> Path:
    """A small generated genome FASTA (two chromosomes, ~120 kb), the file served in download tests."""
    from genodiff.data.genome.demo import write_demo_genome

    path = tmp_path_factory.mktemp("genome") / "small.fa"
    write_demo_genome(path, seed=7, chromosomes=(("chrS1", 80_000), ("chrS2", 40_000)))
    return path
