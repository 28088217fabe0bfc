"""Streaming, validating FASTA reader (plain, gzip or bgzip) with no per-character Python.

The file is read in large blocks; every block is translated with a 256-entry lookup table
(:data:`genodiff.data.genome.alphabet.BYTE_TO_ID`) in numpy. Only header lines are handled in Python.

Validation (each problem raises :class:`~genodiff.errors.InputError` with one line naming the file and
the 1-based line number):

* empty file / file without any sequence;
* sequence before the first ``>`` header;
* empty or duplicate record names (the name is the first whitespace-separated word of the header,
  as pyfaidx uses it);
* characters that are not IUPAC nucleotide letters (``ACGTURYSWKMBDHVN`` in either case);
* inconsistent line wrapping inside a record (all lines but the last of a record must have the same
  length, which pyfaidx needs for its ``.fai`` index) and blank lines inside a record;
* a carriage return that is not part of a ``\\r\\n`` line ending, or a mix of CRLF and LF endings;
* truncated or corrupt gzip.

**CRLF policy**: files with Windows ``\\r\\n`` line endings are *accepted* and normalised (the ``\\r`` is
dropped; pyfaidx indexes such files correctly too). Files mixing ``\\r\\n`` and ``\\n`` are rejected.

This is genodiff's one FASTA reader (every job reads FASTA through it, so a bad file gives the same error
everywhere) and :func:`write_fasta` its one writer.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from genodiff.data.files import atomic_write_bytes
from genodiff.data.genome.alphabet import BYTE_TO_ID, IS_LOWER, count_ambiguous, describe_byte
from genodiff.data.genome.vocab import MASK_ID, N_ID
from genodiff.errors import InputError

PathLike = Union[str, os.PathLike]

#: default read size for the streaming parser (bytes of decompressed text).
DEFAULT_BLOCK_SIZE = 1 << 24
#: default sequence line width of written FASTA.
LINE_WIDTH = 60

_NL = 10
_CR = 13
_GT = ord(">")
# Scanner table: nucleotide ids, 254 for '\n', 253 for '\r', 255 for anything invalid.
_SCAN_LUT = BYTE_TO_ID.copy()
_SCAN_LUT[_NL] = 254
_SCAN_LUT[_CR] = 253


def compression_of(path: PathLike) -> str:
    """Return ``"plain"``, ``"gzip"`` or ``"bgzip"`` by looking at the first bytes of ``path``."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if len(head) < 2 or head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip with FEXTRA (FLG bit 2) and an extra subfield 'BC' (SAM spec, section 4.1).
    if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def open_binary(path: PathLike) -> tuple[BinaryIO, BinaryIO]:
    """Open ``path`` for reading decompressed bytes. Returns ``(reader, raw_file)``.

    ``raw_file.tell()`` gives the position in the (possibly compressed) file, for progress bars.
    gzip and bgzip (multi-member gzip) are both read with :mod:`gzip`.
    """
    raw = open(path, "rb")
    if compression_of(path) == "plain":
        return raw, raw
    return gzip.GzipFile(fileobj=raw, mode="rb"), raw


@dataclass
class RecordStats:
    """Per-record counts gathered while scanning (0-based, the record is ``[0, length)``)."""

    name: str
    header_line: int
    length: int = 0
    n_count: int = 0  # bases encoded as N (including ambiguity codes)
    lower_count: int = 0  # soft-masked (lower-case) bases
    ambiguous: dict = field(default_factory=dict)  # IUPAC code (upper case) -> count, N excluded


class FastaScanner:
    """Validating block scanner. Iterate over :meth:`events` to receive, in file order::

        ("record", RecordStats)            # a new record starts (header parsed)
        ("seq", raw_bytes, ids)            # a chunk of its sequence: two np.uint8 arrays, same length,
                                           # newline-free; ids are Caduceus token ids (A7 C8 G9 T10 N11)

    After iteration, :attr:`records` holds the :class:`RecordStats` of every record.
    Any problem raises :class:`InputError` (see the module docstring).
    ``extra_chars``: characters accepted in sequences besides the IUPAC letters (e.g. ``"?"``, a position
    of a template to be generated); their id is ``[MASK]``.
    """

    def __init__(self, path: PathLike, *, block_size: int = DEFAULT_BLOCK_SIZE,
                 count_stats: bool = True, progress: Optional[Callable[[int], None]] = None,
                 extra_chars: str = ""):
        self.path = Path(path)
        self.block_size = int(block_size)
        self.count_stats = count_stats
        self.progress = progress
        self.extra_chars = extra_chars
        self._lut = _SCAN_LUT
        if extra_chars:
            self._lut = _SCAN_LUT.copy()
            self._lut[np.frombuffer(extra_chars.encode("ascii"), dtype=np.uint8)] = MASK_ID
        self.records: list[RecordStats] = []
        self._names: dict[str, int] = {}
        # line-state
        self._lines_done = 0  # complete lines before the current block
        self._partial_len = 0  # length of the current (incomplete) sequence line already consumed
        self._width = -1  # wrapping width of the current record (-1: not known yet)
        self._ended = False  # a short/blank line was seen in the current record
        self._crlf: Optional[bool] = None
        self._current: Optional[RecordStats] = None

    # ------------------------------------------------------------------ errors
    def _fail(self, line: int, msg: str) -> None:
        raise InputError(f"{self.path} line {line}: {msg}")

    # ------------------------------------------------------------------ main loop
    def events(self) -> Iterator[tuple]:
        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise InputError(f"{self.path}: cannot read FASTA ({e.strerror or e})") from None
        if size == 0:
            raise InputError(f"{self.path}: empty file (no FASTA records)")
        reader, raw = open_binary(self.path)
        carry = b""
        any_data = False
        try:
            while True:
                try:
                    data = reader.read(self.block_size)
                except EOFError:
                    raise InputError(f"{self.path}: truncated gzip file (compressed stream ended early; "
                                     f"re-download or re-compress it)") from None
                except (zlib.error, gzip.BadGzipFile, OSError) as e:
                    raise InputError(f"{self.path}: corrupt gzip data ({e})") from None
                if self.progress is not None:
                    self.progress(raw.tell())
                eof = not data
                if data:
                    any_data = True
                buf = carry + data if carry else data
                carry = b""
                if eof:
                    if not buf and self._partial_len == 0:
                        break
                    if not buf.endswith(b"\n"):
                        buf += b"\r\n" if self._crlf else b"\n"
                if not buf:
                    continue
                carry = yield from self._process(np.frombuffer(buf, dtype=np.uint8), eof)
                if eof:
                    break
        finally:
            reader.close()
            if raw is not reader:
                raw.close()
        if not any_data:
            raise InputError(f"{self.path}: empty file (no FASTA records)")
        if not self.records:
            raise InputError(f"{self.path}: no FASTA header ('>' line) found")
        if sum(r.length for r in self.records) == 0:
            raise InputError(f"{self.path}: FASTA records contain no sequence")

    def _process(self, a: np.ndarray, eof: bool):
        """Process one block; yields events, returns bytes to carry to the next block."""
        nl = np.flatnonzero(a == _NL)
        n_complete = int(nl.size)
        starts = np.empty(n_complete + 1, dtype=np.int64)
        starts[0] = 0
        starts[1:] = nl + 1
        ends = np.empty(n_complete + 1, dtype=np.int64)
        ends[:n_complete] = nl
        ends[n_complete] = a.size  # incomplete tail (possibly empty)
        cont = self._partial_len > 0  # first line continues a sequence line from the previous block

        # Incomplete tail: carry a header (or a lone '\r') to the next block; sequence is consumed now.
        tail_start = int(starts[n_complete])
        carry = b""
        tail_is_header = False
        if tail_start < a.size:
            at_line_start = n_complete > 0 or not cont
            if at_line_start and a[tail_start] == _GT:
                tail_is_header = True
            elif a[a.size - 1] == _CR:
                carry = b"\r"
                ends[n_complete] = a.size - 1
        if tail_is_header:
            carry = a[tail_start:].tobytes()
            ends[n_complete] = tail_start  # make the tail empty
        # effective line ends (without '\r') and CRLF consistency, complete lines only
        eff_ends = ends.copy()
        if n_complete:
            ce = ends[:n_complete]
            has_cr = np.zeros(n_complete, dtype=bool)
            nonempty = ce > starts[:n_complete]
            has_cr[nonempty] = a[ce[nonempty] - 1] == _CR
            eff_ends[:n_complete] = ce - has_cr
            n_cr = int(np.count_nonzero(has_cr))
            if n_cr:
                if self._crlf is False or n_cr != n_complete:
                    bad = int(np.flatnonzero(~has_cr)[0]) if n_cr != n_complete else 0
                    self._fail(self._lines_done + bad + 1,
                               "mixed line endings (CRLF and LF); convert the file to one style (e.g. dos2unix)")
                self._crlf = True
            else:
                if self._crlf:
                    self._fail(self._lines_done + 1,
                               "mixed line endings (CRLF and LF); convert the file to one style (e.g. dos2unix)")
                self._crlf = False
        lengths = eff_ends - starts  # tail length included as last element
        if cont:
            lengths[0] += self._partial_len

        # header lines (complete lines starting with '>'; never the continuation line)
        first = a[np.minimum(starts[:n_complete], a.size - 1)] if n_complete else np.zeros(0, np.uint8)
        is_header = (first == _GT) & (ends[:n_complete] > starts[:n_complete])
        if cont and n_complete:
            is_header[0] = False
        header_idx = np.flatnonzero(is_header)

        # segments of sequence lines between headers: [seg_lo, seg_hi) line indices (tail = n_complete)
        bounds = [0] + [int(h) for h in header_idx] + [n_complete + 1]
        for k in range(len(bounds) - 1):
            lo = bounds[k] if k == 0 else bounds[k] + 1
            hi = bounds[k + 1]
            if k > 0:
                self._start_record(a, int(bounds[k]), starts, eff_ends)
                yield ("record", self._current)
            if hi > lo:
                yield from self._sequence_lines(a, lo, hi, n_complete, starts, ends, eff_ends, lengths, nl)
        # update line state
        tail_len = int(lengths[n_complete])
        if n_complete == 0:
            self._partial_len = tail_len  # (already includes the previous partial length)
        else:
            self._partial_len = 0 if tail_is_header else tail_len
        if tail_is_header:
            self._partial_len = 0
        self._lines_done += n_complete
        return carry

    def _start_record(self, a, i, starts, eff_ends) -> None:
        line_no = self._lines_done + i + 1
        header = a[int(starts[i]) + 1:int(eff_ends[i])].tobytes()
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(line_no, "header is not valid UTF-8 text")
        parts = text.split()
        if not parts:
            self._fail(line_no, "empty record name after '>'")
        name = parts[0]
        if name in self._names:
            self._fail(line_no, f"duplicate record name {name!r} (first at line {self._names[name]})")
        self._names[name] = line_no
        rec = RecordStats(name=name, header_line=line_no)
        self.records.append(rec)
        self._current = rec
        self._width = -1
        self._ended = False

    def _sequence_lines(self, a, lo, hi, n_complete, starts, ends, eff_ends, lengths, nl):
        """Sequence lines lo..hi-1 of the block (index n_complete is the incomplete tail)."""
        complete_hi = min(hi, n_complete)
        L = lengths[lo:complete_hi]
        tail_len = int(lengths[n_complete]) if hi > n_complete else 0
        byte_lo = int(starts[lo])
        # raw end: through the '\n' of the last complete line, or the end of the tail (without a carried '\r')
        byte_hi = int(ends[hi - 1]) + (1 if hi - 1 < n_complete else 0)
        if self._current is None:
            nonblank = np.flatnonzero(L > 0)
            if nonblank.size or tail_len:
                idx = lo + (int(nonblank[0]) if nonblank.size else complete_hi - lo)
                self._fail(self._lines_done + idx + 1,
                           "sequence before the first '>' header line (not a FASTA file?)")
            return
        if L.size:
            self._check_wrapping(L, lo)
        if tail_len and self._ended:
            self._fail(self._lines_done + n_complete + 1, self._wrap_msg(tail_len))
        if byte_hi <= byte_lo:
            return
        seg = a[byte_lo:byte_hi]
        ids = self._lut[seg]
        bad = ids >= 253
        nbad = np.flatnonzero(bad)
        if nbad.size:
            # '\n' (254) and '\r' directly before '\n' (253) are line structure; anything else is invalid
            code = ids[nbad]
            is_nl = code == 254
            is_cr = code == 253
            nxt = nbad + 1
            ok_cr = is_cr & (nxt < seg.size)
            ok_cr[ok_cr] = seg[nxt[ok_cr]] == _NL
            invalid = ~(is_nl | ok_cr)
            if np.any(invalid):
                pos = int(nbad[np.flatnonzero(invalid)[0]])
                self._invalid_char(seg, pos, byte_lo, nl)
            keep = ~bad
            raw = seg[keep]
            ids = ids[keep]
        else:
            raw = seg
        rec = self._current
        rec.length += int(raw.size)
        if self.count_stats and raw.size:
            rec.n_count += int(np.count_nonzero(ids == N_ID))
            rec.lower_count += int(np.count_nonzero(IS_LOWER[raw]))
            for key, c in count_ambiguous(raw).items():
                rec.ambiguous[key] = rec.ambiguous.get(key, 0) + c
        if raw.size:
            yield ("seq", raw, ids)

    def _invalid_char(self, seg, pos, byte_lo, nl) -> None:
        b = int(seg[pos])
        abs_pos = byte_lo + pos
        line_idx = int(np.searchsorted(nl, abs_pos))
        line_no = self._lines_done + line_idx + 1
        line_start = int(nl[line_idx - 1]) + 1 if line_idx > 0 else 0
        col = abs_pos - line_start + 1 + (self._partial_len if line_idx == 0 else 0)
        what = "carriage return not followed by a line feed" if b == _CR else \
            f"non-DNA character {describe_byte(b)}"
        extra = f" and {', '.join(map(repr, self.extra_chars))}" if self.extra_chars else ""
        self._fail(line_no, f"{what} (column {col}) in record {self._current.name!r} "
                            f"(allowed: IUPAC nucleotide letters ACGTURYSWKMBDHVN in either case{extra})")

    def _wrap_msg(self, length: int = 0) -> str:
        width = f" ({self._width})" if self._width >= 0 else ""
        return (f"inconsistent line wrapping in record {self._current.name!r}: sequence continues after a "
                f"shorter or blank line (all lines but the last of a record must have the same length{width}; "
                f"rewrap it, e.g. `seqkit seq -w 60`)")

    def _check_wrapping(self, L: np.ndarray, lo: int) -> None:
        """Wrapping rule on complete line lengths ``L`` (lines lo.. of the block) of the current record."""
        base = self._lines_done + lo + 1
        if self._ended:
            bad = np.flatnonzero(L > 0)
            if bad.size:
                self._fail(base + int(bad[0]), self._wrap_msg(int(L[bad[0]])))
            return
        if self._width < 0:
            if L[0] == 0:
                self._ended = True
                bad = np.flatnonzero(L[1:] > 0)
                if bad.size:
                    self._fail(base + 1 + int(bad[0]),
                               f"blank line inside record {self._current.name!r} (line {base})")
                return
            self._width = int(L[0])
        longer = np.flatnonzero(L > self._width)
        short = np.flatnonzero(L < self._width)
        if longer.size and (not short.size or longer[0] < short[0]):
            j = int(longer[0])
            self._fail(base + j, f"inconsistent line wrapping in record {self._current.name!r}: line has "
                                 f"{int(L[j])} bases but the record's lines are {self._width} wide (all lines "
                                 f"but the last must have the same length; rewrap, e.g. `seqkit seq -w 60`)")
        if short.size:
            k = int(short[0])
            self._ended = True
            bad = np.flatnonzero(L[k + 1:] > 0)
            if bad.size:
                j = k + 1 + int(bad[0])
                self._fail(base + j, self._wrap_msg(int(L[j])))


def scan_fasta(path: PathLike, *, block_size: int = DEFAULT_BLOCK_SIZE) -> list[RecordStats]:
    """Validate a whole FASTA file (plain/gzip/bgzip) and return per-record statistics.

    Raises :class:`InputError` (one line, file + line number) on the first problem.
    """
    sc = FastaScanner(path, block_size=block_size)
    for _ in sc.events():
        pass
    return sc.records


def read_fasta_records(path: PathLike, *, block_size: int = DEFAULT_BLOCK_SIZE,
                       keep_case: bool = True, extra_chars: str = "") -> dict[str, np.ndarray]:
    """Read a whole (small) FASTA into memory: ``{name: np.uint8 ASCII bytes}`` (validated).

    Meant for small genomes, sequence sets and tests; large genomes should use the encoded cache
    (:func:`genodiff.data.genome.cache.build_encoded_cache`). ``keep_case=False`` upper-cases the letters;
    ``extra_chars``: see :class:`FastaScanner`.
    """
    sc = FastaScanner(path, block_size=block_size, count_stats=False, extra_chars=extra_chars)
    chunks: dict[str, list[np.ndarray]] = {}
    cur: list[np.ndarray] = []
    for ev in sc.events():
        if ev[0] == "record":
            cur = chunks.setdefault(ev[1].name, [])
        else:
            cur.append(ev[1].copy())
    out = {}
    for rec in sc.records:
        parts = chunks.get(rec.name, [])
        seq = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        if not keep_case:
            seq = np.where(IS_LOWER[seq], seq - 32, seq).astype(np.uint8)
        out[rec.name] = seq
    return out


def write_fasta(path: PathLike, records: Iterable[tuple[str, Union[str, bytes]]], width: int = LINE_WIDTH) -> Path:
    """Write ``(header, sequence)`` records as FASTA, atomically (a failed run leaves no partial file).

    Each record is ``>header`` (the text after ``>``: the name, then optionally a space and a description)
    followed by the sequence (``str`` or ASCII ``bytes``) in lines of exactly ``width`` characters but the
    last, so pyfaidx and ``samtools faidx`` index the file; an empty sequence has no sequence line.
    Names are not renamed or checked here (callers pass names without whitespace); a header with a line
    break raises ``ValueError``.
    """
    if width < 1:
        raise InputError(f"line width must be >= 1, got {width}")
    parts: list[bytes] = []
    for header, seq in records:
        if "\n" in header or "\r" in header:
            raise ValueError(f"FASTA header {header!r} contains a line break")
        parts.append(b">" + header.encode("utf-8") + b"\n")
        for i in range(0, len(seq), width):
            line = seq[i:i + width]
            parts.append((line.encode("utf-8") if isinstance(line, str) else bytes(line)) + b"\n")
    return atomic_write_bytes(path, b"".join(parts))
