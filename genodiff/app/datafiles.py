"""The data folder of ``genodiff serve``: the only server files a browser may name.

The page offers the FASTA files under ``data_dir`` in a drop-down (:func:`list_fasta`, names relative to
``data_dir`` with ``/`` separators); a request names one of them and :func:`resolve_data_file` turns the name
back into a path only when it is one of those files: no absolute paths, no ``..``, no symbolic link (or
linked folder) that leads outside ``data_dir``, nothing that is not a regular file. Names are also limited to
the characters the app passes on to a job unquoted (:data:`SAFE_NAME`); other files are not offered.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from genodiff.errors import InputError

#: FASTA file name endings offered by the page (plain, gzip or bgzip).
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz", ".fa.bgz", ".fasta.bgz")
#: characters allowed in an offered relative name (and in any path the app hands to a job)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+/-]+$")
#: at most this many files are listed (a huge folder would make an unusable drop-down)
MAX_LISTED = 2000


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def list_fasta(data_dir: Path | None) -> list[str]:
    """Relative names (``sub/genome.fa``) of the FASTA files under ``data_dir`` whose real location is inside
    it, sorted; hidden files and folders are skipped. Empty when ``data_dir`` is None."""
    if data_dir is None:
        return []
    root = Path(data_dir).resolve()
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(FASTA_SUFFIXES):
                continue
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if SAFE_NAME.match(rel) and path.is_file() and _inside(path.resolve(), root):
                found.append(rel)
                if len(found) >= MAX_LISTED:
                    return found
    return found


def resolve_data_file(data_dir: Path | None, name: str | None, what: str) -> Path:
    """The real path of the data-folder file ``name`` (as listed by :func:`list_fasta`).

    Raises :class:`InputError` (``"<what>: ..."``) for anything else: no data folder, an empty name, an
    absolute name or one with ``..``, a file outside ``data_dir`` after resolving links, a missing file."""
    if data_dir is None:
        raise InputError(f"{what}: no data folder is configured on this server (data_dir=...)")
    if not name:
        raise InputError(f"{what}: choose a file from the data folder")
    text = str(name)
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "\\", "~")) or ".." in parts or not SAFE_NAME.match(text):
        raise InputError(f"{what}: {text!r} is not a file of the data folder")
    root = Path(data_dir).resolve()
    path = (root / text).resolve()
    if not _inside(path, root) or not path.is_file() or text not in list_fasta(root):
        raise InputError(f"{what}: {text!r} is not a file of the data folder")
    return path
