"""File helpers every job shares: atomic writes (a failed run leaves no partial file), file digests, JSON reading."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable

from genodiff.errors import InputError

CHUNK = 1 << 20


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then ``os.replace``.

    The parent folder is created; on any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # durable before it takes the final name (checkpoints survive a power cut)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``md5`` or ``sha256``), streamed in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON file at ``path``; a malformed file is one :class:`InputError` line naming file and line."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None


def install_folder(staging: str | os.PathLike, final: str | os.PathLike,
                   keep_concurrent: Callable[[Path], bool] | None = None) -> bool:
    """Move the finished folder ``staging`` to ``final``, replacing an existing ``final`` (removed after the swap).

    When the rename fails because another process installed ``final`` meanwhile and ``keep_concurrent(final)``
    says theirs is complete, ``staging`` is discarded and theirs kept. Returns True when ``staging`` was
    installed. A failed install leaves the previous ``final`` in place."""
    staging, final = Path(staging), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    try:
        os.rename(staging, final)
        installed = True
    except OSError:
        if keep_concurrent is None or not keep_concurrent(final):
            if old is not None:
                os.rename(old, final)
            raise
        shutil.rmtree(staging, ignore_errors=True)
        installed = False
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return installed
