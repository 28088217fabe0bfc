"""Random access to a FASTA genome (plain or bgzip through pyfaidx; plain gzip in memory).

* ``Genome(path).fetch(chrom, start, end, strand="+")``: 0-based half-open coordinates, padding with
  ``N`` before 0 and past the chromosome end, reverse complement for ``strand="-"``.
* Chromosome aliases (``chr1`` / ``1`` / ``NC_000001.11``) from a manifest mapping plus automatic
  ``chr``-prefix toggling (:class:`genodiff.data.genome.aliases.ChromAliases`).
* The FASTA is validated (:mod:`genodiff.data.genome.fasta`) whenever a pyfaidx index has to be (re)built,
  so problems (bad wrapping, non-DNA characters, duplicate names, ...) are reported as one-line
  :class:`InputError` naming file and line, never as pyfaidx's own exception.
* Compression: plain and bgzip FASTA are indexed by pyfaidx (``.fai``/``.gzi`` next to the file, or
  in ``index_dir`` / the user cache directory when the FASTA's folder is read-only). pyfaidx cannot
  index plain gzip: such a file is decoded once into memory (fine for small genomes; for large ones
  use the encoded cache, :func:`genodiff.data.genome.cache.build_encoded_cache`, or ``bgzip`` the file).
  pyfaidx also chooses BGZF by the ``.gz``/``.bgz`` name; a file whose name and content disagree is
  read into memory as well (``Genome.backend`` says which path is used).
* Fork-safe: pyfaidx file handles are reopened lazily in each process (DataLoader workers).

Coordinates are 0-based half-open everywhere in this module.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pyfaidx

from genodiff.data.genome.aliases import AliasMapping, ChromAliases
from genodiff.data.genome.alphabet import BYTE_TO_ID, STR_COMPLEMENT
from genodiff.data.genome.fasta import compression_of, read_fasta_records, scan_fasta
from genodiff.data.genome.intervals import check_range, parse_strand, resolve_chrom
from genodiff.data.manifest import default_cache_dir
from genodiff.errors import InputError

PathLike = Union[str, os.PathLike]


def _index_location(path: Path, index_dir: Optional[PathLike]) -> Path:
    """Directory for ``.fai``/``.gzi``: ``index_dir``, else next to the FASTA if writable, else a cache dir."""
    if index_dir is not None:
        d = Path(index_dir)
        d.mkdir(parents=True, exist_ok=True)
        return d
    if Path(str(path) + ".fai").exists() or os.access(path.parent, os.W_OK):
        return path.parent
    d = default_cache_dir() / "fai" / hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    return d


class Genome:
    """A FASTA genome with 0-based half-open random access.

    Args:
        path: FASTA file (plain, bgzip, or plain gzip which is loaded into memory).
        aliases: manifest aliases ``{canonical: [alias, ...]}``; chr-prefix toggling is automatic.
        index_dir: where to put the pyfaidx ``.fai`` (and ``.gzi``); default next to the FASTA, or a
            user cache directory when that folder is not writable.
        uppercase: return upper-case sequence (default); False keeps the soft-mask (lower case).
        validate: validate the whole FASTA first. ``None`` (default): only when an index is built.
    """

    def __init__(self, path: PathLike, *, aliases: Optional[AliasMapping] = None,
                 index_dir: Optional[PathLike] = None, uppercase: bool = True, validate: Optional[bool] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: FASTA file not found")
        self.uppercase = uppercase
        self.compression = compression_of(self.path)
        self._pid = None
        self._fa = None
        self._mem: Optional[dict] = None
        suffix_gz = self.path.name.lower().endswith((".gz", ".bgz"))
        pyfaidx_ok = (self.compression == "plain" and not self.path.name.lower().endswith((".gz", ".bgz", ".bz2", ".zip"))) \
            or (self.compression == "bgzip" and suffix_gz)
        #: "pyfaidx" (random access on disk) or "memory" (plain gzip, or a name pyfaidx misreads).
        self.backend = "pyfaidx" if pyfaidx_ok else "memory"
        if not pyfaidx_ok:
            # pyfaidx cannot index plain gzip (and picks BGZF by file name): decode once into memory.
            self._mem = read_fasta_records(self.path)
            self.names = list(self._mem)
            self.lengths = {k: int(v.size) for k, v in self._mem.items()}
        else:
            loc = _index_location(self.path, index_dir)
            self._fai = loc / (self.path.name + ".fai")
            self._gzi = loc / (self.path.name + ".gzi") if self.compression == "bgzip" else None
            stale = (not self._fai.exists()) or self._fai.stat().st_mtime < self.path.stat().st_mtime
            if validate or (validate is None and stale):
                scan_fasta(self.path)
            fa = self._open()
            self.names = list(fa.keys())
            self.lengths = {k: len(fa[k]) for k in self.names}
        self.aliases = ChromAliases(self.names, aliases)

    # -------------------------------------------------------------- pyfaidx handle (per process)
    def _open(self):
        pid = os.getpid()
        if self._fa is not None and self._pid == pid:
            return self._fa
        kwargs = dict(indexname=str(self._fai), as_raw=True, sequence_always_upper=False, rebuild=True,
                      build_index=True)
        if self._gzi is not None:
            kwargs["gzi_indexname"] = str(self._gzi)
        try:
            self._fa = pyfaidx.Fasta(str(self.path), **kwargs)
        except InputError:
            raise
        except Exception as e:  # pyfaidx's own errors: re-validate for a precise message, else wrap
            scan_fasta(self.path)
            msg = " ".join(str(e).split())
            raise InputError(f"{self.path}: cannot index FASTA with pyfaidx ({msg})") from None
        self._pid = pid
        return self._fa

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fa"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._fa is not None:
            try:
                self._fa.close()
            except Exception:
                pass
            self._fa = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, contigs={len(self.names)})"

    # -------------------------------------------------------------- names
    def resolve(self, chrom: str) -> str:
        """Genome name for ``chrom`` (exact, manifest alias, or chr toggled); InputError if unknown."""
        return resolve_chrom(self.aliases, chrom, self.path)

    def __contains__(self, chrom: str) -> bool:
        return chrom in self.aliases

    # -------------------------------------------------------------- fetch
    def _raw(self, name: str, lo: int, hi: int) -> str:
        if self._mem is not None:
            return self._mem[name][lo:hi].tobytes().decode("ascii")
        return str(self._open()[name][lo:hi])

    def fetch(self, chrom: str, start: int, end: int, strand: str = "+") -> str:
        """Sequence of ``chrom:[start, end)`` (0-based half-open) as a string of length ``end - start``.

        Positions < 0 or >= the chromosome length are ``N``. ``strand="-"`` gives the reverse complement.
        Upper case unless the genome was opened with ``uppercase=False``.
        """
        name = self.resolve(chrom)
        start, end = check_range(chrom, start, end)
        reverse = parse_strand(strand)
        n = self.lengths[name]
        lo, hi = max(start, 0), min(end, n)
        seq = self._raw(name, lo, hi) if hi > lo else ""
        if lo > start or hi < end:
            left = min(lo, end) - start
            seq = "N" * left + seq + "N" * (end - start - left - len(seq))
        if self.uppercase:
            seq = seq.upper()
        if reverse:
            seq = seq.translate(STR_COMPLEMENT)[::-1]
        return seq

    def fetch_ids(self, chrom: str, start: int, end: int, strand: str = "+") -> np.ndarray:
        """Token ids (np.uint8 [end - start]) of ``chrom:[start, end)``, 0-based half-open, N-padded."""
        s = self.fetch(chrom, start, end, strand)
        return BYTE_TO_ID[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]
