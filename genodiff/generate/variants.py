"""Variant effect scores: log-likelihood ratio of the alternative vs the reference allele in a window.

Input: a VCF (``#CHROM POS ID REF ALT ...``; plain or gzip) or a TSV with columns ``chrom pos ref alt``
(optional header line starting with ``chrom`` or ``#``). **POS is 1-based in both**, as in VCF; internally
the variant occupies the 0-based half-open interval ``[POS-1, POS-1+len(REF))``. Multi-allelic ALT
(``A,T``) is split into one row per allele.

Supported: SNVs and equal-length substitutions (MNVs). Indels, symbolic (``<DEL>``), ``*`` and ``.``
alleles are reported per record as unsupported. Other per-record errors: REF that disagrees with the
genome, unknown contigs, positions off the contig end, malformed lines. They go to the ``error`` column
(and a separate errors TSV); good records are still scored. A file that is not a VCF/TSV at all raises
one :class:`InputError`.

Window: ``W`` bp (0-based half-open ``[start, start + W)``), centred on the variant
(``start = p0 - (W - len(REF)) // 2``), shifted to stay inside the contig; the whole contig when shorter.

Score: ``llr = NELBO(ref window) - NELBO(alt window)`` in nats, estimated with the *same* random draws
(masking ranks / times) for both alleles (common random numbers). Positive: the model prefers ALT;
negative: it prefers REF. ``llr_stderr`` is the standard error of the paired per-draw differences.
Since NELBO >= -log p, the llr is a difference of bounds, not an exact log-likelihood ratio.
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

__all__ = ["Variant", "read_variants", "variant_window", "score_variants", "TSV_COLUMNS"]

TSV_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "window_start", "window_end", "nelbo_ref", "nelbo_alt",
               "llr", "llr_stderr", "z", "error"]


@dataclass
class Variant:
    """One (chrom, 1-based pos, ref, alt) record; ``error`` set when it cannot be scored; ``line`` = file line."""

    chrom: str
    pos: int | None
    ref: str
    alt: str
    id: str = "."
    line: int = 0
    error: str = ""
    window: tuple[int, int] | None = None
    result: dict = field(default_factory=dict)


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", errors="replace")
    return open(path, "rt", errors="replace")


def read_variants(path: str | Path) -> tuple[list[Variant], str]:
    """Parse a VCF or TSV -> (variants with per-record ``error`` set where malformed, format name).

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
                for a in alt.split(","):
                    variants.append(Variant(chrom, p, ref.upper(), a.upper(), vid or ".", lineno))
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputError(f"input: {path}: cannot read ({exc.__class__.__name__})") from None
    if parsed_ok == 0:
        raise InputError(f"input: {path}: not a VCF or TSV of variants (no record with chrom, 1-based pos, ref, alt)")
    return variants, fmt or "tsv"


_ACGT = set("ACGT")


def variant_window(v: Variant, genome, window: int) -> str | None:
    """Validate ``v`` against ``genome``; set ``v.window`` (0-based half-open) or ``v.error``. Returns the
    reference window sequence (upper case) or None."""
    if v.error:
        return None
    if not v.ref or not v.alt or v.alt in (".", "*") or v.alt.startswith("<") or "[" in v.alt or "]" in v.alt:
        v.error = f"unsupported ALT {v.alt!r} (symbolic / missing allele)"
        return None
    if not set(v.ref) <= _ACGT | {"N"} or not set(v.alt) <= _ACGT:
        v.error = f"unsupported alleles {v.ref}>{v.alt} (only A/C/G/T)"
        return None
    if len(v.ref) != len(v.alt):
        v.error = f"unsupported: indel {v.ref}>{v.alt} (only SNVs and equal-length substitutions are scored)"
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
    W = min(int(window), n)
    start = p0 - (W - len(v.ref)) // 2
    start = max(0, min(start, n - W))
    v.window = (start, start + W)
    return genome.fetch(name, start, start + W).upper()


def score_variants(model, variants: list[Variant], genome, window: int, num_samples: int, method: str, seed: int,
                   batch_size: int = 16, progress=None) -> None:
    """Fill ``v.result`` (nelbo_ref, nelbo_alt, llr, llr_stderr, z) for every valid variant, in place.

    Windows of equal length share one set of draws (seeded by ``seed`` and the length), so ref and alt of a
    variant see identical masking randomness; the paired per-draw differences give ``llr_stderr``.
    """
    method = pick_method(model.objective, method)
    jobs = []
    for v in variants:
        seq = variant_window(v, genome, window)
        if seq is None:
            continue
        off = v.pos - 1 - v.window[0]
        alt_seq = seq[:off] + v.alt + seq[off + len(v.alt):]
        jobs.append((v, seq, alt_seq))
    by_len: dict[int, list] = {}
    for job in jobs:
        by_len.setdefault(len(job[1]), []).append(job)
    for L, group in sorted(by_len.items()):
        draws = make_draws(int(num_samples), L, method, int(seed) * 1_000_003 + L)
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            ref = torch.as_tensor(np.stack([encode(s) for _, s, _ in chunk]), device=model.device)
            alt = torch.as_tensor(np.stack([encode(a) for _, _, a in chunk]), device=model.device)
            r_ref = nelbo_with_draws(model.objective, model.denoiser, ref, draws)
            r_alt = nelbo_with_draws(model.objective, model.denoiser, alt, draws)
            diff = r_ref.samples - r_alt.samples  # [B, K]
            se = mean_and_stderr(diff)[1]
            for j, (v, _, _) in enumerate(chunk):
                llr = float(diff[j].mean())
                s = float(se[j])
                v.result = {"nelbo_ref": float(r_ref.nelbo[j]), "nelbo_alt": float(r_alt.nelbo[j]), "llr": llr,
                            "llr_stderr": s, "z": llr / s if s > 0 else float("nan")}
            if progress is not None:
                progress(len(chunk))
