"""Variant effect scores: log-likelihood ratio of the alternative vs the reference allele in a window.

Input
-----
A VCF (``#CHROM POS ID REF ALT ...``; plain, gzip or bgzip ``.vcf.gz`` -- BGZF is multi-member gzip, read by
the standard library) or a TSV with columns ``chrom pos ref alt`` (optional header line starting with
``chrom`` or ``#``). **POS is 1-based in both**, as in VCF: the record's REF occupies the 0-based half-open
genome interval ``[POS-1, POS-1+len(REF))`` and must match the genome there. A multi-allelic ALT
(``A,T``) is split into one row per allele; ``allele`` is the allele's 1-based index in the ALT list (the
number a VCF genotype uses for it).

Alleles
-------
Each (REF, ALT) pair is normalised by trimming the bases REF and ALT share, first the common prefix (this
removes the VCF anchor base of an indel: ``POS=10 REF=A ALT=ATT`` inserts ``TT`` between 0-based 9 and 10),
then the common suffix (``REF=ACGT ALT=ACT`` deletes the ``G`` at 0-based ``POS+1``). What is left is the
**change**: genome bases ``[start, end)`` (0-based half-open, ``r = end - start`` bases, possibly 0) replaced
by ``inserted`` (``a`` bases, possibly 0):

======== ================================ ==========================================================
kind     after trimming                   example (POS=10, 0-based p0=9) -> [start, end), inserted
======== ================================ ==========================================================
snv      r = a = 1                        ``C>T``         -> [9, 10), ``T``
mnv      r = a > 1                        ``CA>TG``       -> [9, 11), ``TG``
ins      r = 0 (insertion point start)    ``C>CAG``       -> [10, 10), ``AG`` (between 9 and 10)
del      a = 0                            ``CAG>C``       -> [10, 12), ``""``
complex  r, a > 0, r != a                 ``CA>GTT``      -> [9, 11), ``GTT`` (no shared first base)
======== ================================ ==========================================================

An insertion at the contig start (VCF anchors it on the base *after*: ``POS=1 REF=A ALT=TA``) trims to
``[0, 0), T``. The haplotype does not depend on the trimming order; only where the window is centred does
(indels in repeats are not left-aligned: the window is centred where the record puts the change).
Per-allele errors (the other alleles and records are still scored): symbolic alleles (``<DEL>``,
``<INS>``, ``<NON_REF>``), breakends (``A[chr2:5[``, ``.A``), ``*`` (spanning deletion), ``.`` (missing),
non-A/C/G/T ALT bases, ALT equal to REF, REF that disagrees with the genome, unknown contigs, positions
off the contig end, a change longer than the window, malformed lines. They go to the ``error`` column
(and a separate errors TSV). A file that is not a VCF/TSV at all raises one :class:`InputError`.

Windows
-------
Both windows have the same length ``W = min(window, n, n + a - r)`` (``n``: contig length; ``n + a - r``:
the alt haplotype's length) and are centred on the change in their own sequence:

* **ref window** = genome ``[ref_start, ref_start + W)`` with ``ref_start = start - (W - r) // 2``;
* **alt window** = W bases of the alt haplotype ``genome[:start] + inserted + genome[end:]`` starting at
  ``alt_start = start - (W - a) // 2`` (alt-haplotype coordinates equal genome coordinates left of
  ``start``), i.e. ``genome[alt_start:start] + inserted + genome[end:alt_end]`` with
  ``alt_end = alt_start + W - a + r``. The genome interval it spans, ``[alt_start, alt_end)``, has length
  ``W + r - a`` and includes the replaced bases ``[start, end)``, which the alt window does not contain.

For an insertion (``r = 0``) the ref window has ``W // 2`` bases left of the insertion point. Each window
is shifted by the least amount that keeps it inside its sequence (``0 <= ref_start <= n - W``,
``0 <= alt_start <= n + a - r - W``); it always contains the whole change, which is why a change with
``max(r, a) > W`` is an error. For SNVs and MNVs both windows are the same genome interval.

Score
-----
``llr = NELBO(ref window) - NELBO(alt window)`` in nats, estimated with common random numbers: the same
draws (stratified times / numbers of masked bases ``u_k`` and per-position keys, :mod:`.scoring`) for both
windows, with the alt window's keys permuted (:meth:`~genodiff.generate.scoring.Draws.permuted`) so that
every genome base present in both windows gets the same key in both -- the same masked / unmasked state in
every draw, wherever the indel shifted it. The bases only in one window (inserted or replaced bases, and the
flank bases the shift moved in or out) take the remaining keys in position order. For SNVs and MNVs the
permutation is the identity. Each estimate stays unbiased (a fixed permutation of i.i.d. uniform keys is
i.i.d. uniform). Positive llr: the model prefers ALT; negative: it prefers REF. ``llr_stderr`` is the
standard error of the paired per-draw differences. Since NELBO >= -log p, the llr is a difference of
bounds, not an exact log-likelihood ratio (it is one for an exact denoiser, where the MDLM NELBO is tight).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genodiff.diffusion.likelihood import mean_and_stderr
from genodiff.errors import InputError
from genodiff.generate.conditioning import encode
from genodiff.generate.scoring import make_draws, nelbo_with_draws, pick_method

__all__ = [
    "ERROR_COLUMNS",
    "TSV_COLUMNS",
    "Change",
    "Variant",
    "Windows",
    "allele_windows",
    "alt_key_index",
    "normalize_change",
    "read_variants",
    "score_variants",
    "variant_row",
    "variant_windows",
]

TSV_COLUMNS = ["chrom", "pos", "id", "allele", "ref", "alt", "kind", "change_start", "change_end",
               "inserted", "ref_window_start", "ref_window_end", "alt_window_start", "alt_window_end", "nelbo_ref", "nelbo_alt",
               "llr", "llr_stderr", "z", "error"]
ERROR_COLUMNS = ["chrom", "pos", "id", "allele", "ref", "alt", "error"]


@dataclass(frozen=True)
class Change:
    """A normalised allele: genome bases ``[start, end)`` (0-based half-open) replaced by ``inserted``."""

    start: int
    end: int
    inserted: str

    @property
    def kind(self) -> str:
        r, a = self.end - self.start, len(self.inserted)
        if r == a:
            return "snv" if r == 1 else "mnv"
        return "ins" if r == 0 else "del" if a == 0 else "complex"


@dataclass(frozen=True)
class Windows:
    """The two equal-length windows of one allele (module docstring, "Windows").

    ``ref``: genome interval of the ref window (length ``length``); ``alt``: genome interval spanned by the
    alt window (length ``length + r - a``); both 0-based half-open."""

    ref: tuple[int, int]
    alt: tuple[int, int]
    length: int


@dataclass
class Variant:
    """One allele of a record: ``pos`` 1-based (None when unparsable), ``allele`` the 1-based ALT index,
    ``line`` the file line. ``error`` set when it cannot be scored; ``change`` / ``windows`` / ``result``
    filled by :func:`variant_windows` and :func:`score_variants`."""

    chrom: str
    pos: int | None
    ref: str
    alt: str
    id: str = "."
    line: int = 0
    error: str = ""
    allele: int = 1
    change: Change | None = None
    windows: Windows | None = None
    result: dict = field(default_factory=dict)

    @property
    def window(self) -> tuple[int, int] | None:
        """The ref window (0-based half-open genome interval) or None."""
        return self.windows.ref if self.windows else None


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":  # gzip and bgzip (BGZF = concatenated gzip members)
        return gzip.open(path, "rt", errors="replace")
    return open(path, "rt", errors="replace")


def read_variants(path: str | Path) -> tuple[list[Variant], str]:
    """Parse a VCF or TSV -> (one :class:`Variant` per ALT allele, per-record ``error`` set where malformed;
    format name ``"vcf"`` | ``"tsv"``).

    Raises InputError when the file is missing or is neither a VCF nor a TSV of ``chrom pos ref alt``.
    """
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise InputError(f"input: {path}: file not found")
    variants: list[Variant] = []
    fmt = None
    parsed_ok = 0
    data_lines = 0
    try:
        with _open_text(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                if line.startswith("##"):
                    fmt = fmt or ("vcf" if line.startswith("##fileformat=VCF") else None)
                    continue
                if line.startswith("#"):
                    head = line.lstrip("#").split("\t")
                    if head[:5] == ["CHROM", "POS", "ID", "REF", "ALT"]:
                        fmt = "vcf"
                    elif [h.strip().lower() for h in head[:4]] == ["chrom", "pos", "ref", "alt"]:
                        fmt = "tsv"
                    continue
                cols = line.split("\t") if "\t" in line else line.split()
                if fmt is None and data_lines == 0 and [c.lower() for c in cols[:4]] == ["chrom", "pos", "ref", "alt"]:
                    fmt = "tsv"
                    continue
                data_lines += 1
                if fmt is None:
                    fmt = "vcf" if len(cols) >= 8 else "tsv"
                if fmt == "vcf":
                    if len(cols) < 5:
                        variants.append(Variant(cols[0] if cols else "?", None, "", "", line=lineno,
                                                error=f"line {lineno}: VCF record with {len(cols)} columns (need >= 5)"))
                        continue
                    chrom, pos, vid, ref, alt = cols[:5]
                else:
                    if len(cols) < 4:
                        variants.append(Variant(cols[0] if cols else "?", None, "", "", line=lineno,
                                                error=f"line {lineno}: TSV record with {len(cols)} columns "
                                                      "(need chrom pos ref alt)"))
                        continue
                    chrom, pos, ref, alt = cols[:4]
                    vid = "."
                try:
                    p = int(pos)
                    if p < 1:
                        raise ValueError
                except ValueError:
                    variants.append(Variant(chrom, None, ref, alt, vid, lineno,
                                            error=f"line {lineno}: POS {pos!r} is not a positive integer (1-based)"))
                    continue
                parsed_ok += 1
                for index, a in enumerate(alt.split(","), 1):
                    variants.append(Variant(chrom, p, ref.upper(), a.upper(), vid or ".", lineno, allele=index))
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputError(f"input: {path}: cannot read ({exc.__class__.__name__})") from None
    if parsed_ok == 0:
        raise InputError(f"input: {path}: not a VCF or TSV of variants (no record with chrom, 1-based pos, ref, alt)")
    return variants, fmt or "tsv"


_ACGT = set("ACGT")


def _unsupported(ref: str, alt: str) -> str:
    """The per-allele error for alleles that are not plain sequence, or ``""``."""
    if not ref or ref == ".":
        return "missing REF"
    if alt.startswith("<"):
        return f"unsupported ALT {alt!r}: symbolic allele (only sequence alleles are scored)"
    if "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
        return f"unsupported ALT {alt!r}: breakend (only sequence alleles are scored)"
    if alt == "*":
        return "unsupported ALT '*': spanning deletion (overlapping deletion allele, not a sequence)"
    if not alt or alt == ".":
        return "missing ALT allele ('.')"
    if not set(ref) <= _ACGT | {"N"} or not set(alt) <= _ACGT:
        return f"unsupported alleles {ref}>{alt} (REF A/C/G/T/N, ALT A/C/G/T only)"
    if ref == alt:
        return f"ALT equals REF ({ref}): no change"
    return ""


def normalize_change(pos: int, ref: str, alt: str) -> Change:
    """Trim the common prefix, then the common suffix, of ``ref`` and ``alt`` (module docstring, "Alleles").

    ``pos``: 1-based VCF POS of ``ref``. Returns the :class:`Change` (0-based half-open genome interval
    and the inserted bases)."""
    p0 = int(pos) - 1
    i = 0
    while i < min(len(ref), len(alt)) and ref[i] == alt[i]:
        i += 1
    ref_rest, alt_rest = ref[i:], alt[i:]
    j = 0
    while j < min(len(ref_rest), len(alt_rest)) and ref_rest[-1 - j] == alt_rest[-1 - j]:
        j += 1
    return Change(p0 + i, p0 + len(ref) - j, alt_rest[:len(alt_rest) - j])


def allele_windows(change: Change, contig_length: int, window: int) -> Windows:
    """Equal-length ref / alt windows centred on ``change`` (module docstring, "Windows").

    Raises ValueError when the change does not fit (``max(r, a) > W``) or lies outside the contig."""
    s, e, a = change.start, change.end, len(change.inserted)
    r, n = e - s, int(contig_length)
    if not 0 <= s <= e <= n:
        raise ValueError(f"change [{s}, {e}) is outside the contig [0, {n})")
    n_alt = n + a - r
    W = min(int(window), n, n_alt)
    if max(r, a) > W:
        raise ValueError(f"the change ({r} REF, {a} ALT bases after trimming) is longer than the {W}-bp window")
    ref_start = max(0, min(s - (W - r) // 2, n - W))
    alt_start = max(0, min(s - (W - a) // 2, n_alt - W))
    return Windows((ref_start, ref_start + W), (alt_start, alt_start + W - a + r), W)


def alt_key_index(change: Change, windows: Windows) -> np.ndarray:
    """Position map for common random numbers: alt-window position j uses the draw key of ref-window
    position ``index[j]`` (int64 [W], a permutation of ``0..W-1``).

    A genome base in both windows gets its ref-window position; the alt-only positions (inserted bases,
    flank bases outside the ref window) take the ref-only positions (replaced bases, ref flank bases
    outside the alt window) in increasing order. The identity for SNVs and MNVs."""
    s, e, a = change.start, change.end, len(change.inserted)
    r, W = e - s, windows.length
    ref_start, alt_start = windows.ref[0], windows.alt[0]
    x = alt_start + np.arange(W)  # alt-haplotype coordinates
    inserted = (x >= s) & (x < s + a)
    g = np.where(x < s, x, x - a + r)  # genome coordinate of the non-inserted alt bases
    shared = ~inserted & (g >= ref_start) & (g < ref_start + W)
    index = np.full(W, -1, dtype=np.int64)
    index[shared] = g[shared] - ref_start
    used = np.zeros(W, dtype=bool)
    used[index[shared]] = True
    index[~shared] = np.flatnonzero(~used)
    return index


def variant_windows(v: Variant, genome, window: int) -> tuple[str, str, np.ndarray] | None:
    """Validate ``v`` against ``genome``; set ``v.change`` and ``v.windows``, or ``v.error``.

    Returns ``(ref window sequence, alt window sequence, alt_key_index)`` (upper case, equal length) or
    None."""
    if v.error:
        return None
    problem = _unsupported(v.ref, v.alt)
    if problem:
        v.error = problem
        return None
    if v.chrom not in genome:
        v.error = f"unknown contig {v.chrom!r}"
        return None
    name = genome.resolve(v.chrom)
    n = genome.lengths[name]
    p0 = v.pos - 1
    if p0 + len(v.ref) > n:
        v.error = f"position {v.pos} (1-based) is past the end of {name} (length {n})"
        return None
    genome_ref = genome.fetch(name, p0, p0 + len(v.ref)).upper()
    if genome_ref != v.ref:
        v.error = f"REF {v.ref} disagrees with the genome ({genome_ref}) at {name}:{v.pos}"
        return None
    change = normalize_change(v.pos, v.ref, v.alt)
    try:
        windows = allele_windows(change, n, window)
    except ValueError as exc:
        v.error = f"{exc} (raise window=)"
        return None
    v.change, v.windows = change, windows
    ref_seq = genome.fetch(name, *windows.ref).upper()
    alt_seq = (genome.fetch(name, windows.alt[0], change.start) + change.inserted
               + genome.fetch(name, change.end, windows.alt[1])).upper()
    return ref_seq, alt_seq, alt_key_index(change, windows)


def score_variants(model, variants: list[Variant], genome, window: int, num_samples: int, method: str, seed: int,
                   batch_size: int = 16, progress=None) -> None:
    """Fill ``v.result`` (nelbo_ref, nelbo_alt, llr, llr_stderr, z) for every valid variant, in place.

    Windows of equal length share one set of draws (seeded by ``seed`` and the length); each alt window
    uses them permuted by :func:`alt_key_index` (module docstring, "Score"). The paired per-draw
    differences give ``llr_stderr``.
    """
    method = pick_method(model.objective, method)
    by_len: dict[int, list] = {}
    for v in variants:
        prepared = variant_windows(v, genome, window)
        if prepared is not None:
            by_len.setdefault(len(prepared[0]), []).append((v, *prepared))
    for L, group in sorted(by_len.items()):
        draws = make_draws(int(num_samples), L, method, int(seed) * 1_000_003 + L)
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            ref = torch.as_tensor(np.stack([encode(s) for _, s, _, _ in chunk]), device=model.device)
            alt = torch.as_tensor(np.stack([encode(a) for _, _, a, _ in chunk]), device=model.device)
            alt_draws = draws.permuted(torch.as_tensor(np.stack([k for _, _, _, k in chunk])))
            r_ref = nelbo_with_draws(model.objective, model.denoiser, ref, draws)
            r_alt = nelbo_with_draws(model.objective, model.denoiser, alt, alt_draws)
            diff = r_ref.samples - r_alt.samples  # [B, K]
            se = mean_and_stderr(diff)[1]
            for j, (v, _, _, _) in enumerate(chunk):
                llr = float(diff[j].mean())
                s = float(se[j])
                v.result = {"nelbo_ref": float(r_ref.nelbo[j]), "nelbo_alt": float(r_alt.nelbo[j]), "llr": llr,
                            "llr_stderr": s, "z": llr / s if s > 0 else float("nan")}
            if progress is not None:
                progress(len(chunk))


def variant_row(v: Variant) -> dict:
    """One output row (``TSV_COLUMNS``); coordinates 0-based half-open, ``pos`` 1-based as in the input."""
    c, w = v.change, v.windows
    row = {"chrom": v.chrom, "pos": v.pos if v.pos is not None else "", "id": v.id, "allele": v.allele,
           "ref": v.ref, "alt": v.alt, "kind": c.kind if c else "", "change_start": c.start if c else "",
           "change_end": c.end if c else "", "inserted": c.inserted if c else "", "ref_window_start": w.ref[0] if w else "",
           "ref_window_end": w.ref[1] if w else "", "alt_window_start": w.alt[0] if w else "",
           "alt_window_end": w.alt[1] if w else "", "error": v.error, **v.result}
    if not v.result and not v.error:
        row["error"] = "not scored"
    return row
