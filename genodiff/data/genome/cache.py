"""Encoded genome cache: a FASTA converted once into a ``uint8`` token memmap plus an index.

Layout of a cache directory::

    index.json      format/version, source path + fingerprint, contigs (name, length, offset, counts)
    tokens.u8       all contigs concatenated, one Caduceus token id per base (A7 C8 G9 T10 N11)
    softmask.bits   np.packbits of the per-base lower-case (soft-mask) flag, same global positions
    n_runs.npy      int64 [R, 2]: maximal runs of N as global half-open [start, end), sorted

* **One-time conversion**: :func:`build_encoded_cache` stream-parses the FASTA (plain, gzip or bgzip;
  pyfaidx is not needed) in large blocks with a 256-entry lookup table, validating as it goes
  (see :mod:`genodiff.data.genome.fasta`). IUPAC ambiguity codes become ``N`` and are counted per contig.
* **Zero copy**: :meth:`EncodedGenome.fetch` on the ``+`` strand fully inside a contig returns a
  read-only view of the memmap.
* **Staleness**: the index stores a fingerprint of the source (size, mtime and SHA-256 of the first
  and last MiB); ``build_encoded_cache`` rebuilds when it no longer matches.
* **Atomic**: the cache is written into a hidden temporary sibling directory and renamed into place
  only when complete; on any error (including bad input) nothing is left behind.
* **Fork-safe**: the memmap is opened lazily, per process (the pid is checked), and is not pickled,
  so an :class:`EncodedGenome` can be handed to DataLoader workers.

Coordinates are 0-based half-open everywhere in this module.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from genodiff.data.files import install_folder
from genodiff.data.genome.aliases import AliasMapping, ChromAliases
from genodiff.data.genome.alphabet import COMPLEMENT_IDS, ID_TO_BYTE, IS_LOWER
from genodiff.data.genome.fasta import DEFAULT_BLOCK_SIZE, FastaScanner, compression_of
from genodiff.data.genome.intervals import check_range, parse_strand, resolve_chrom
from genodiff.data.genome.vocab import N_ID, TOKENS
from genodiff.data.progress import progress_bar
from genodiff.errors import InputError

PathLike = Union[str, os.PathLike]

CACHE_FORMAT = "genodiff-encoded-genome"
CACHE_VERSION = 1
INDEX_NAME = "index.json"
TOKENS_NAME = "tokens.u8"
SOFTMASK_NAME = "softmask.bits"
NRUNS_NAME = "n_runs.npy"
_HASH_SPAN = 1 << 20


# ----------------------------------------------------------------------------------- fingerprint
def fasta_fingerprint(path: PathLike) -> dict:
    """Cheap identity of a file: size, mtime (ns) and SHA-256 of its first and last MiB (and size)."""
    p = Path(path)
    try:
        st = p.stat()
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            h.update(fh.read(_HASH_SPAN))
            if st.st_size > _HASH_SPAN:
                fh.seek(max(_HASH_SPAN, st.st_size - _HASH_SPAN))
                h.update(fh.read(_HASH_SPAN))
        h.update(str(st.st_size).encode())
    except FileNotFoundError:
        raise InputError(f"{p}: FASTA file not found") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, expected a FASTA file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read FASTA ({e.strerror or e})") from None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "sha256_head_tail": h.hexdigest()}


def _read_index(cache_dir: Path) -> Optional[dict]:
    try:
        with open(cache_dir / INDEX_NAME, "r", encoding="utf-8") as fh:
            idx = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(idx, dict) or idx.get("format") != CACHE_FORMAT or idx.get("version") != CACHE_VERSION:
        return None
    return idx


def cache_is_current(cache_dir: PathLike, fasta_path: PathLike) -> bool:
    """True if ``cache_dir`` holds a complete cache built from the current content of ``fasta_path``."""
    cache_dir = Path(cache_dir)
    idx = _read_index(cache_dir)
    if idx is None:
        return False
    if idx.get("fingerprint") != fasta_fingerprint(fasta_path):
        return False
    files = [TOKENS_NAME, SOFTMASK_NAME, NRUNS_NAME]
    if not all((cache_dir / f).is_file() for f in files):
        return False
    return (cache_dir / TOKENS_NAME).stat().st_size == idx.get("total_length")


# ----------------------------------------------------------------------------------- build
class _Writer:
    """Consumes scanner events and writes the cache files into ``tmp``."""

    def __init__(self, tmp: Path):
        self.tok = open(tmp / TOKENS_NAME, "wb")
        self.sm = open(tmp / SOFTMASK_NAME, "wb")
        self.pos = 0
        self.pending_bits = np.zeros(0, dtype=bool)
        self.run_open = -1
        self.runs: list[np.ndarray] = []
        self.contigs: list[dict] = []

    def start(self, rec) -> None:
        self.end_contig()
        self.contigs.append({"name": rec.name, "offset": self.pos, "rec": rec})

    def end_contig(self) -> None:
        if self.run_open >= 0:
            self.runs.append(np.array([[self.run_open, self.pos]], dtype=np.int64))
            self.run_open = -1

    def chunk(self, raw: np.ndarray, ids: np.ndarray) -> None:
        n = ids.size
        self.tok.write(memoryview(np.ascontiguousarray(ids)))
        bits = IS_LOWER[raw]
        if self.pending_bits.size:
            bits = np.concatenate([self.pending_bits, bits])
        n8 = (bits.size // 8) * 8
        if n8:
            self.sm.write(np.packbits(bits[:n8]).tobytes())
        self.pending_bits = bits[n8:]
        isn = ids == N_ID
        if self.run_open >= 0 or isn.any():
            x = np.empty(n + 2, dtype=np.int8)
            x[0] = 1 if self.run_open >= 0 else 0
            x[1:n + 1] = isn
            x[n + 1] = 0  # close at the chunk end; reopened below if the chunk ends inside a run
            d = np.diff(x)
            starts = np.flatnonzero(d == 1).astype(np.int64) + self.pos
            ends = np.flatnonzero(d == -1).astype(np.int64) + self.pos
            if self.run_open >= 0:
                # x[0] = 1 means no start can be found at index 0: the open run is the first one
                starts = np.concatenate([np.asarray([self.run_open], dtype=np.int64), starts])
                self.run_open = -1
            # the run touching the chunk end stays open (it may continue in the next chunk)
            if ends.size and ends[-1] == self.pos + n and isn[-1]:
                self.run_open = int(starts[-1])
                starts, ends = starts[:-1], ends[:-1]
            if starts.size:
                self.runs.append(np.stack([starts, ends], axis=1))
        self.pos += n

    def finish(self) -> None:
        self.end_contig()
        if self.pending_bits.size:
            self.sm.write(np.packbits(self.pending_bits).tobytes())
        self.tok.flush()
        os.fsync(self.tok.fileno())
        self.tok.close()
        self.sm.close()

    def close(self) -> None:
        for f in (self.tok, self.sm):
            try:
                f.close()
            except Exception:
                pass


def _clean_stale_tmp(parent: Path, name: str) -> None:
    """Remove temporary build dirs of ``name`` left by killed processes (pid no longer alive)."""
    for p in list(parent.glob(f".{name}.tmp-*")) + list(parent.glob(f".{name}.old-*")):
        prefix = f".{name}.tmp-" if p.name.startswith(f".{name}.tmp-") else f".{name}.old-"
        try:
            pid = int(p.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(p, ignore_errors=True)


def build_encoded_cache(fasta_path: PathLike, cache_dir: PathLike, *, progress: bool = True,
                        force: bool = False, aliases: Optional[AliasMapping] = None,
                        block_size: int = DEFAULT_BLOCK_SIZE) -> "EncodedGenome":
    """Convert ``fasta_path`` (plain, gzip or bgzip FASTA) into an encoded cache at ``cache_dir``.

    Returns the opened :class:`EncodedGenome`. If ``cache_dir`` already holds a cache of the same
    source content (fingerprint match) it is reused, unless ``force``. A stale cache is replaced.
    The build is atomic: files are written to a temporary sibling directory that is renamed into place
    at the end; on any error (bad input included) it is removed and ``cache_dir`` is left untouched.

    Raises:
        InputError: invalid FASTA (one line naming file and line), unreadable source, or ``cache_dir``
            exists and is not a genodiff cache (it is never deleted then).
    """
    fasta_path = Path(fasta_path)
    cache_dir = Path(cache_dir)
    fp = fasta_fingerprint(fasta_path)
    if not force and cache_is_current(cache_dir, fasta_path):
        return EncodedGenome.open(cache_dir, aliases=aliases)
    if cache_dir.exists():
        if not cache_dir.is_dir():
            raise InputError(f"{cache_dir}: cache path exists and is not a directory")
        if any(cache_dir.iterdir()) and not (cache_dir / INDEX_NAME).exists():
            raise InputError(f"{cache_dir}: directory exists and is not a genodiff encoded-genome cache "
                             f"(no {INDEX_NAME}); choose another cache directory")
    parent = cache_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(parent, cache_dir.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-{os.getpid()}-", dir=parent))
    _chmod_like_umask(tmp)
    writer = None
    bar = progress_bar(fp["size"], f"encoding {fasta_path.name}", progress, bytes_=True, leave=False)
    try:
        last = [0]

        def _progress(pos: int) -> None:
            bar.update(pos - last[0])
            last[0] = pos

        scanner = FastaScanner(fasta_path, block_size=block_size, progress=_progress)
        writer = _Writer(tmp)
        for ev in scanner.events():
            if ev[0] == "seq":
                writer.chunk(ev[1], ev[2])
            else:
                writer.start(ev[1])
        writer.finish()
        contigs = []
        for c in writer.contigs:
            rec = c.pop("rec")
            contigs.append({"name": rec.name, "length": rec.length, "offset": c["offset"],
                            "n_count": rec.n_count, "lower_count": rec.lower_count,
                            "ambiguous": dict(sorted(rec.ambiguous.items())), "header_line": rec.header_line})
        runs = np.concatenate(writer.runs) if writer.runs else np.zeros((0, 2), dtype=np.int64)
        with open(tmp / NRUNS_NAME, "wb") as fh:
            np.save(fh, runs.astype(np.int64), allow_pickle=False)
        if fasta_fingerprint(fasta_path) != fp:
            raise InputError(f"{fasta_path}: file changed while the cache was being built; run again")
        index = {
            "format": CACHE_FORMAT, "version": CACHE_VERSION,
            "source": str(fasta_path.resolve()), "compression": compression_of(fasta_path),
            "fingerprint": fp, "vocab": list(TOKENS), "total_length": int(writer.pos),
            "contigs": contigs,
            "ambiguous_total": int(sum(sum(c["ambiguous"].values()) for c in contigs)),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_index(tmp, index)
        install_folder(tmp, cache_dir, keep_concurrent=lambda theirs: (theirs / INDEX_NAME).exists())
    except BaseException:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return EncodedGenome.open(cache_dir, aliases=aliases)


def _chmod_like_umask(path: Path) -> None:
    """mkdtemp creates 0700 directories; give the cache the permissions a normal mkdir would."""
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(path, 0o777 & ~mask)
    except OSError:  # pragma: no cover
        pass


def _write_index(tmp: Path, index: dict) -> None:
    with open(tmp / INDEX_NAME, "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


# ----------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class Contig:
    """One sequence of the genome: global ``[offset, offset + length)`` in ``tokens.u8``."""

    name: str
    length: int
    offset: int


def _map_file(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        return np.zeros(0, dtype=np.uint8)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mm, dtype=np.uint8)


class EncodedGenome:
    """Read access to an encoded cache (see the module docstring). Use :meth:`open` to create.

    Attributes:
        cache_dir: the cache directory.
        contigs: list of :class:`Contig` in file order.
        names: contig names; ``lengths``: ``{name: length}``.
        index: the parsed ``index.json`` (includes per-contig ``n_count``, ``lower_count``, ``ambiguous``).
    """

    def __init__(self, cache_dir: PathLike, index: dict, aliases: Optional[AliasMapping] = None):
        self.cache_dir = Path(cache_dir)
        self.index = index
        self.contigs = [Contig(c["name"], int(c["length"]), int(c["offset"])) for c in index["contigs"]]
        self.names = [c.name for c in self.contigs]
        self.lengths = {c.name: c.length for c in self.contigs}
        self._pos = {c.name: i for i, c in enumerate(self.contigs)}
        self.offsets = np.asarray([c.offset for c in self.contigs], dtype=np.int64)
        self.contig_lengths = np.asarray([c.length for c in self.contigs], dtype=np.int64)
        self.total_length = int(index["total_length"])
        self.alias_mapping = dict(aliases) if aliases else None
        self.aliases = ChromAliases(self.names, aliases)
        with open(self.cache_dir / NRUNS_NAME, "rb") as fh:
            runs = np.load(fh, allow_pickle=False)
        self._run_starts = np.ascontiguousarray(runs[:, 0])
        self._run_ends = np.ascontiguousarray(runs[:, 1])
        self._run_cum = np.concatenate([[0], np.cumsum(self._run_ends - self._run_starts)]).astype(np.int64)
        self._pid = None
        self._tokens = None
        self._softmask = None

    # -------------------------------------------------------------- construction / pickling
    @classmethod
    def open(cls, cache_dir: PathLike, *, aliases: Optional[AliasMapping] = None,
             source: Optional[PathLike] = None) -> "EncodedGenome":
        """Open an existing cache. With ``source``, raise InputError if the cache is stale for it."""
        cache_dir = Path(cache_dir)
        idx = _read_index(cache_dir)
        if idx is None:
            raise InputError(f"{cache_dir}: not a genodiff encoded-genome cache (missing or invalid "
                             f"{INDEX_NAME}); build it with build_encoded_cache / `genodiff data prepare`")
        try:
            size = (cache_dir / TOKENS_NAME).stat().st_size
        except OSError:
            size = -1
        if size != idx.get("total_length") or not (cache_dir / NRUNS_NAME).is_file() \
                or not (cache_dir / SOFTMASK_NAME).is_file():
            raise InputError(f"{cache_dir}: encoded-genome cache is incomplete or corrupt "
                             f"({TOKENS_NAME} has {size} bytes, index says {idx.get('total_length')}); rebuild it")
        if source is not None and idx.get("fingerprint") != fasta_fingerprint(source):
            raise InputError(f"{cache_dir}: cache is stale, {source} changed since it was built; rebuild it")
        return cls(cache_dir, idx, aliases)

    def __getstate__(self):
        return {"cache_dir": str(self.cache_dir), "index": self.index, "aliases": self.alias_mapping}

    def __setstate__(self, state):
        self.__init__(state["cache_dir"], state["index"], state["aliases"])

    def __repr__(self) -> str:
        return f"EncodedGenome({str(self.cache_dir)!r}, contigs={len(self.contigs)}, bp={self.total_length})"

    # -------------------------------------------------------------- lazy per-process memmaps
    def _mapped(self, attr: str, name: str) -> np.ndarray:
        """The read-only memmap of cache file ``name``, kept in ``attr`` and opened once per process."""
        pid = os.getpid()
        if self._pid != pid:
            self._tokens = None
            self._softmask = None
            self._pid = pid
        if getattr(self, attr) is None:
            setattr(self, attr, _map_file(self.cache_dir / name))
        return getattr(self, attr)

    @property
    def tokens(self) -> np.ndarray:
        """All token ids, np.uint8 [total_length], read-only memmap (opened lazily in each process)."""
        return self._mapped("_tokens", TOKENS_NAME)

    @property
    def softmask_bits(self) -> np.ndarray:
        """Packed lower-case flags, np.uint8 [ceil(total_length / 8)] (np.packbits order)."""
        return self._mapped("_softmask", SOFTMASK_NAME)

    # -------------------------------------------------------------- names
    def resolve(self, chrom: str) -> str:
        """Genome name for ``chrom`` (exact, manifest alias, or chr-prefix toggled); InputError if unknown."""
        return resolve_chrom(self.aliases, chrom, self.cache_dir)

    def chrom_index(self, chrom: Union[str, int]) -> int:
        """Position of ``chrom`` in :attr:`contigs` (accepts an int index or any alias)."""
        if isinstance(chrom, (int, np.integer)):
            return int(chrom)
        return self._pos[self.resolve(chrom)]

    def __contains__(self, chrom: str) -> bool:
        return chrom in self.aliases

    # -------------------------------------------------------------- fetch
    def _global_range(self, chrom, start: int, end: int):
        ci = self.chrom_index(chrom)
        start, end = check_range(self.names[ci], start, end)
        return ci, self.contigs[ci], start, end

    def fetch(self, chrom: Union[str, int], start: int, end: int, strand: str = "+") -> np.ndarray:
        """Token ids of ``chrom:[start, end)`` (0-based half-open), np.uint8 [end - start].

        On the ``+`` strand fully inside the contig this is a zero-copy, read-only view of the memmap.
        Positions before 0 or past the contig end are padded with N (a copy). ``strand="-"`` returns
        the reverse complement (a copy).
        """
        ci, c, start, end = self._global_range(chrom, start, end)
        rc = parse_strand(strand)
        tok = self.tokens
        if 0 <= start and end <= c.length:
            out = tok[c.offset + start:c.offset + end]
        else:
            out = np.full(end - start, N_ID, dtype=np.uint8)
            lo, hi = max(start, 0), min(end, c.length)
            if hi > lo:
                out[lo - start:hi - start] = tok[c.offset + lo:c.offset + hi]
        if rc:
            out = COMPLEMENT_IDS[out[::-1]]
        return out

    def fetch_softmask(self, chrom: Union[str, int], start: int, end: int, strand: str = "+") -> np.ndarray:
        """Soft-mask flags (True = lower-case/repeat) of ``chrom:[start, end)``, 0-based half-open.

        np.bool_ [end - start]; padding outside the contig is False; ``strand="-"`` reverses it.
        """
        ci, c, start, end = self._global_range(chrom, start, end)
        rc = parse_strand(strand)
        out = np.zeros(end - start, dtype=bool)
        lo, hi = max(start, 0), min(end, c.length)
        if hi > lo:
            g0, g1 = c.offset + lo, c.offset + hi
            b0, b1 = g0 // 8, (g1 + 7) // 8
            bits = np.unpackbits(self.softmask_bits[b0:b1])
            out[lo - start:hi - start] = bits[g0 - 8 * b0:g1 - 8 * b0].astype(bool)
        return out[::-1].copy() if rc else out

    def fetch_string(self, chrom: Union[str, int], start: int, end: int, strand: str = "+",
                     keep_case: bool = False) -> str:
        """``chrom:[start, end)`` (0-based half-open) as an ACGTN string (lower case kept if ``keep_case``)."""
        s = ID_TO_BYTE[self.fetch(chrom, start, end, strand)]
        if keep_case:
            m = self.fetch_softmask(chrom, start, end, strand)
            s = np.where(m, s + 32, s).astype(np.uint8)
        return s.tobytes().decode("ascii")

    def fetch_batch(self, chroms: Union[Sequence, np.ndarray], starts: Union[Sequence[int], np.ndarray],
                    length: int, reverse: Optional[Union[Sequence[bool], np.ndarray]] = None) -> np.ndarray:
        """Vectorized gather of B windows ``[starts[b], starts[b] + length)`` (0-based half-open).

        Args:
            chroms: B contig indices (ints) or names.
            starts: B window starts.
            length: window length L.
            reverse: optional B booleans; True rows are reverse-complemented.
        Returns:
            np.uint8 [B, L] token ids (a copy); positions outside a contig are N.
        """
        ci = np.asarray([self.chrom_index(c) for c in chroms] if not isinstance(chroms, np.ndarray)
                        or chroms.dtype.kind not in "iu" else chroms, dtype=np.int64)
        st = np.asarray(starts, dtype=np.int64)
        L = int(length)
        tok = self.tokens
        ar = np.arange(L, dtype=np.int64)
        clen = self.contig_lengths[ci]
        if np.all(st >= 0) and np.all(st + L <= clen):
            out = tok[(self.offsets[ci] + st)[:, None] + ar]
        else:
            pos = st[:, None] + ar
            valid = (pos >= 0) & (pos < clen[:, None])
            gidx = self.offsets[ci][:, None] + np.clip(pos, 0, np.maximum(clen - 1, 0)[:, None])
            if tok.size:
                out = np.where(valid, tok[np.minimum(gidx, tok.size - 1)], np.uint8(N_ID)).astype(np.uint8)
            else:
                out = np.full(pos.shape, N_ID, dtype=np.uint8)
        if reverse is not None:
            rv = np.asarray(reverse, dtype=bool)
            if rv.any():
                out[rv] = COMPLEMENT_IDS[out[rv, ::-1]]
        return out

    # -------------------------------------------------------------- N statistics
    def _n_before(self, g: np.ndarray) -> np.ndarray:
        """Number of N positions at global positions < g (vectorized over g)."""
        if self._run_starts.size == 0:
            return np.zeros_like(g)
        k = np.searchsorted(self._run_starts, g, side="left")
        prev_end = np.where(k > 0, self._run_ends[np.maximum(k - 1, 0)], 0)
        over = np.clip(prev_end - g, 0, None)
        over = np.where(k > 0, over, 0)
        return self._run_cum[k] - over

    def n_count(self, chroms, starts, ends) -> np.ndarray:
        """Number of N tokens in each window ``chrom:[start, end)`` (0-based half-open), vectorized.

        Positions outside the contig count as N (they are padded with N by :meth:`fetch`).
        Returns np.int64 [B].
        """
        ci = np.asarray([self.chrom_index(c) for c in np.atleast_1d(chroms)] if
                        np.asarray(chroms).dtype.kind not in "iu" else np.atleast_1d(chroms), dtype=np.int64)
        st = np.atleast_1d(np.asarray(starts, dtype=np.int64))
        en = np.atleast_1d(np.asarray(ends, dtype=np.int64))
        clen = self.contig_lengths[ci]
        lo = np.clip(st, 0, clen)
        hi = np.clip(en, 0, clen)
        hi = np.maximum(hi, lo)
        off = self.offsets[ci]
        inside = self._n_before(off + hi) - self._n_before(off + lo)
        outside = (en - st) - (hi - lo)
        return inside + outside

    def n_fraction(self, chroms, starts, ends) -> np.ndarray:
        """Fraction of N (padding included) in each window ``chrom:[start, end)`` (0-based half-open),
        float64 [B]; empty windows give 1.0."""
        st = np.atleast_1d(np.asarray(starts, dtype=np.int64))
        en = np.atleast_1d(np.asarray(ends, dtype=np.int64))
        n = self.n_count(chroms, st, en)
        width = en - st
        return np.where(width > 0, n / np.maximum(width, 1), 1.0)

    # -------------------------------------------------------------- summary
    def summary(self) -> dict:
        """Counts for reports: bp, contigs, N, soft-masked, IUPAC ambiguity codes collapsed to N."""
        cs = self.index["contigs"]
        amb: dict[str, int] = {}
        for c in cs:
            for k, v in c["ambiguous"].items():
                amb[k] = amb.get(k, 0) + v
        return {"contigs": len(cs), "bp": self.total_length, "n": sum(c["n_count"] for c in cs),
                "soft_masked": sum(c["lower_count"] for c in cs), "ambiguous_to_n": amb,
                "source": self.index.get("source")}
