"""Verified, resumable downloads (stdlib ``urllib``).

:func:`download_file` fetches ``url`` into ``dest``:

* bytes go to ``dest + ".part"``; a rerun after an interruption resumes from the ``.part`` file with an
  HTTP ``Range`` request (if the server ignores ``Range`` the download restarts from zero);
* a dropped connection is retried (resuming) up to ``retries`` times;
* when complete, the size and checksum (``md5`` or ``sha256``) are verified *before* the file is
  renamed atomically to ``dest``; a file that does not verify is deleted and never appears as ``dest``;
* any failure raises :class:`~genodiff.errors.DownloadError` with one line naming the URL, the problem
  and the exact path where the file can be placed by hand.

``file://`` URLs are supported (copied, same verification). A progress bar (tqdm, on stderr) is shown
only when ``progress`` is true and stderr is a terminal.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from genodiff.data.files import CHUNK, file_digest
from genodiff.data.progress import progress_bar
from genodiff.errors import DownloadError

CHECKSUM_ALGORITHMS = ("md5", "sha256")
USER_AGENT = "genodiff-data/0.1 (+https://github.com/genodiff)"


class FetchError(DownloadError):
    """The request itself failed: ``reason`` says why in a few words; ``status`` is the HTTP status
    (e.g. 404) when the server answered with an error, else ``None`` (offline, refused, timed out)."""

    def __init__(self, message: str, reason: str, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def _hand_hint(url: str, dest: Path, algorithm: str | None, expected: str | None) -> str:
    check = f" ({algorithm} {expected})" if algorithm and expected else ""
    return f"download it yourself from {url} and place it at {dest}{check}"


class _Interrupted(Exception):
    """The connection ended before all bytes arrived (resumable)."""


def _fetch_once(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """One HTTP(S)/file request, appending to ``part`` (Range resume). Raises _Interrupted on a short read."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have and not url.startswith("file:"):
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part file is already complete
            return
        raise
    with response:
        status = getattr(response, "status", None) or 200
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            start = content_range.split(" ", 1)[-1].split("-", 1)[0]
            if not start.isdigit() or int(start) != have:
                raise _Interrupted(f"server resumed at byte {start}, expected {have}")
            mode, initial = "ab", have
            total = have + length if length is not None else None
        else:  # full body: start again from zero
            mode, initial, total = "wb", 0, length
        bar = progress_bar(total, desc, progress and sys.stderr.isatty(), bytes_=True, initial=initial, leave=False)
        received = 0
        try:
            with open(part, mode) as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as exc:
            raise _Interrupted(str(exc) or type(exc).__name__) from exc
        finally:
            bar.close()
        if length is not None and received < length:
            raise _Interrupted(f"connection closed after {initial + received} bytes")


def download_file(url: str, dest: str | os.PathLike, *, algorithm: str | None = None, expected: str | None = None,
                  size: int | None = None, progress: bool = True, timeout: float = 60.0, retries: int = 3,
                  force: bool = False, on_fetched: Callable[[Path], None] | None = None) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic); return ``dest``.

    ``algorithm``/``expected``: checksum (``md5``/``sha256``, hex) that the file must match; ``None``
    skips the checksum (callers then verify the content otherwise). ``size``: expected byte count.
    If ``dest`` already exists it is verified and kept (``force`` re-downloads). ``on_fetched`` is called
    with the completed ``.part`` path before the rename and may raise to reject the file.
    """
    dest = Path(dest)
    if algorithm is not None and algorithm not in CHECKSUM_ALGORITHMS:
        raise DownloadError(f"unsupported checksum algorithm {algorithm!r} for {url} (use md5 or sha256)")
    hint = _hand_hint(url, dest, algorithm, expected)
    if dest.exists() and not force:
        problem = verify_file(dest, algorithm=algorithm, expected=expected, size=size)
        if problem:
            raise DownloadError(f"{dest}: {problem}; delete it and rerun, or {hint}")
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create folder {dest.parent}: {exc.strerror or exc}") from exc
    part = dest.with_name(dest.name + ".part")
    if force and part.exists():
        part.unlink()
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, timeout, progress, dest.name)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                done = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"download of {url} interrupted ({exc}); {done} bytes kept in {part}, "
                                    f"rerun to resume, or {hint}") from None
            time.sleep(min(2.0, 0.2 * attempt))
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            raise FetchError(f"cannot download {url}: {reason}; {hint}", reason, exc.code) from None
        except urllib.error.URLError as exc:
            reason = str(getattr(exc.reason, "strerror", None) or exc.reason)
            raise FetchError(f"cannot download {url}: {reason} (offline?); {hint}", reason) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchError(f"cannot download {url}: {exc}; {hint}", str(exc)) from None
    problem = verify_file(part, algorithm=algorithm, expected=expected, size=size)
    if problem is None and on_fetched is not None:
        try:
            on_fetched(part)
        except DownloadError as exc:
            problem = str(exc)
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloaded {url} but {problem}; the file was deleted, rerun or {hint}")
    os.replace(part, dest)
    return dest


def verify_file(path: str | os.PathLike, *, algorithm: str | None = None, expected: str | None = None,
                size: int | None = None) -> str | None:
    """``None`` if ``path`` has the expected size and checksum, else a short description of the problem."""
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != int(size):
        return f"size is {actual_size} bytes, expected {size}"
    if algorithm and expected:
        digest = file_digest(path, algorithm)
        if digest.lower() != expected.lower():
            return f"{algorithm} checksum mismatch (got {digest}, expected {expected})"
    return None


def parse_checksum_file(text: str, source: str = "checksum file") -> dict[str, str]:
    """Parse ``md5sum``/``sha256sum`` output (``<hex>  <name>`` or ``<hex> *<name>`` per line) -> {name: hex}.

    Names are keyed by their base name (UCSC lists ``hg38.fa.gz``; some lists use ``./hg38.fa.gz``).
    """
    sums: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not all(c in "0123456789abcdefABCDEF" for c in parts[0]):
            continue
        name = parts[1].strip().lstrip("*")
        sums[name.rsplit("/", 1)[-1]] = parts[0].lower()
    return sums


def lookup_checksum(checksum_url: str, name: str, dest_dir: str | os.PathLike, *, progress: bool = False,
                    timeout: float = 60.0, names: Iterable[str] = ()) -> str:
    """Fetch a published checksum list (e.g. UCSC ``md5sum.txt``) into ``dest_dir`` and return ``name``'s hex.

    The list is cached next to the data (``<dest_dir>/<basename of checksum_url>``).
    """
    listing = Path(dest_dir) / checksum_url.rstrip("/").rsplit("/", 1)[-1]
    download_file(checksum_url, listing, progress=progress, timeout=timeout)
    sums = parse_checksum_file(listing.read_text(encoding="utf-8", errors="replace"))
    for candidate in (name, *names):
        if candidate in sums:
            return sums[candidate]
    raise DownloadError(f"{checksum_url} (cached at {listing}) lists no checksum for {name}")
