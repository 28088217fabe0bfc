"""Templates (what is known, what to generate), windowed filling past the model's context, GC targets.

A :class:`Template` is a token row ``tokens`` (np.int64 [L]) holding known bases and ``[MASK]`` where bases
are to be generated. Known bases are carried over unchanged by every sampler (and re-imposed and checked
after sampling). Coordinates are 0-based half-open everywhere: ``chr2:1000-2000`` means bases
1000..1999 (the 1,001st to the 2,000th base), like BED.

Ways to build templates:

* unconditional: ``L`` masks (:func:`blank_template`);
* prefix / suffix: known bases at the start / end, masks in between (:func:`prefix_suffix_template`);
* a sequence whose ``N`` / ``?`` characters are to be generated (:func:`template_from_string`);
* a genome region (``chrom:start-end`` or BED lines) with ``flank`` bp of known context on each side
  (:func:`region_template`); genome ``N`` bases in the flanks stay ``N`` (known, never scored).

:func:`fill` samples the masks with any window sampler; when ``L`` exceeds ``block_length`` it proceeds
semi-autoregressively: the first window is ``block_length`` long, every following window commits the next
``stride`` positions with the preceding ``block_length - stride`` positions (already known or generated)
as context. Known bases inside the current window are context too; known bases further right are not
seen until their window comes (a limitation of semi-autoregressive generation). Text generation uses the
same windows (:func:`genodiff.generate.text.generate_text`).

GC target (:func:`gc_accept`): *rejection sampling*. Whole sequences are drawn from the model and kept
only when the GC fraction of their generated positions lies within ``target +- tolerance``. The kept
sequences follow the model distribution *conditioned on that GC window* (a changed distribution, on
purpose); the acceptance rate is reported so users see how far the target is from what the model likes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from genodiff.data.genome import vocab as V
from genodiff.data.genome.alphabet import BYTE_TO_ID, ID_TO_BYTE, INVALID
from genodiff.errors import InputError

__all__ = ["Template", "blank_template", "prefix_suffix_template", "template_from_string", "parse_region",
           "region_template", "fill", "gc_fraction", "gc_accept", "runs_of", "encode", "decode"]


def encode(seq: str) -> np.ndarray:
    """Known DNA string -> ids (np.int64 [L]) with the genome alphabet's byte table (either case; U -> T;
    IUPAC ambiguity codes -> N); any other character raises :class:`InputError`."""
    ids = BYTE_TO_ID[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    bad = ids == INVALID
    if bad.any():
        raise InputError(f"non-DNA character {seq[int(np.flatnonzero(bad)[0])]!r} in a sequence")
    return ids.astype(np.int64)


def decode(ids) -> str:
    """ids (np / torch [L]) of A/C/G/T/N -> string; ``[MASK]`` or other specials raise ValueError."""
    arr = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < V.A_ID or arr.max() > V.N_ID):
        raise ValueError("cannot decode special tokens as DNA")
    return ID_TO_BYTE[arr].tobytes().decode("ascii")


@dataclass
class Template:
    """One conditioning pattern.

    id: record name stem. tokens: np.int64 [L], ``[MASK]`` (=3) at positions to generate.
    origin: genome frame ``{"chrom", "start", "end"}`` of the whole template (0-based half-open) when it
    came from a genome region, else None.
    """

    id: str
    tokens: np.ndarray
    origin: dict | None = None
    note: str = ""

    @property
    def length(self) -> int:
        return int(self.tokens.size)

    @property
    def generate_mask(self) -> np.ndarray:
        """bool [L]: True where bases are generated."""
        return self.tokens == V.MASK_ID

    def infill_runs(self) -> list[tuple[int, int]]:
        """Maximal runs ``[start, end)`` (template coordinates, 0-based half-open) of generated positions."""
        return runs_of(self.generate_mask)


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a bool [L] array as 0-based half-open ``(start, end)`` pairs."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def blank_template(name: str, length: int) -> Template:
    if length < 1:
        raise InputError(f"length: must be >= 1, got {length}")
    return Template(name, np.full(int(length), V.MASK_ID, dtype=np.int64))


def template_from_string(name: str, seq: str, generate_chars: str = "N?") -> Template:
    """``seq`` with ``generate_chars`` (default ``N`` and ``?``, any case) marked for generation."""
    seq = "".join(str(seq).split())
    if not seq:
        raise InputError(f"template {name}: empty sequence")
    gen = np.isin(np.frombuffer(seq.upper().encode("ascii"), dtype=np.uint8),
                  np.frombuffer(generate_chars.upper().encode("ascii"), dtype=np.uint8))
    known = encode("".join("A" if g else c for g, c in zip(gen, seq)))
    known[gen] = V.MASK_ID
    return Template(name, known)


def prefix_suffix_template(name: str, length: int, prefix: str = "", suffix: str = "") -> Template:
    """``prefix`` + masks + ``suffix`` of total ``length`` (N/? inside prefix or suffix are generated too)."""
    prefix, suffix = prefix or "", suffix or ""
    n_mid = int(length) - len(prefix) - len(suffix)
    if n_mid < 0:
        raise InputError(f"length={length} is shorter than prefix ({len(prefix)} bp) + suffix ({len(suffix)} bp)")
    return template_from_string(name, prefix + "?" * n_mid + suffix)


_REGION = re.compile(r"^\s*([^:\s]+):([0-9,_]+)-([0-9,_]+)\s*$")


def parse_region(text: str) -> tuple[str, int, int]:
    """``chrom:start-end`` (0-based half-open, commas allowed) -> ``(chrom, start, end)``."""
    m = _REGION.match(str(text))
    if not m:
        raise InputError(f"region: expected chrom:start-end (0-based half-open), got {text!r}")
    start, end = int(m.group(2).replace(",", "").replace("_", "")), int(m.group(3).replace(",", "").replace("_", ""))
    if end <= start:
        raise InputError(f"region {text}: end must be greater than start")
    return m.group(1), start, end


def region_template(genome, chrom: str, start: int, end: int, flank: int, name: str | None = None) -> Template:
    """Generate ``chrom:[start, end)`` with up to ``flank`` bp of genome context on each side (clipped at the
    contig ends). The template covers ``[max(0, start - flank), min(len, end + flank))``."""
    try:
        gname = genome.resolve(chrom)
    except InputError:
        raise InputError(f"region {chrom}:{start}-{end}: unknown contig {chrom!r} in {genome.path}") from None
    n = genome.lengths[gname]
    if start < 0 or end > n:
        raise InputError(f"region {chrom}:{start}-{end}: outside contig {gname} (length {n})")
    lo, hi = max(0, start - int(flank)), min(n, end + int(flank))
    seq = genome.fetch(gname, lo, hi)
    tokens = encode(seq)
    tokens[start - lo:end - lo] = V.MASK_ID
    return Template(name or f"{gname}:{start}-{end}", tokens, {"chrom": gname, "start": lo, "end": hi})


# ----------------------------------------------------------------------------------------- fill
def window_spans(length: int, block_length: int | None, stride: int | None) -> list[tuple[int, int]]:
    """The ``[lo, end)`` windows :func:`fill` samples in turn over ``length`` positions: one window when
    ``block_length`` is None or >= length, else windows of ``block_length`` advancing by ``stride`` new
    positions (default ``block_length // 2``), the last one ending at ``length``."""
    W = length if not block_length or block_length >= length else int(block_length)
    S = int(stride) if stride else max(1, W // 2)
    if not 0 < S <= W:
        raise InputError(f"stride: need 0 < stride <= block_length ({W}), got {S}")
    spans, end = [], 0
    while end < length:
        end = W if end == 0 else min(end + S, length)
        spans.append((max(0, end - W), end))
    return spans


def masked_per_window(generate_mask: np.ndarray, block_length: int | None, stride: int | None) -> list[tuple[int, int]]:
    """(window length, positions still masked when :func:`fill` reaches it) for each window that has any:
    the generated positions the window adds beyond the previous window's end."""
    out, previous_end = [], 0
    for lo, end in window_spans(len(generate_mask), block_length, stride):
        new = int(np.count_nonzero(generate_mask[max(lo, previous_end):end]))
        if new:
            out.append((end - lo, new))
        previous_end = end
    return out


def fill(sample_window: Callable, x: torch.Tensor, mask_id: int, block_length: int | None, stride: int | None,
         generator: torch.Generator) -> tuple[torch.Tensor, int, int]:
    """Fill every ``mask_id`` of ``x`` (LongTensor[B, L]) with ``sample_window(x_init=..., generator=...)``.

    ``block_length`` None or >= L: one window. Otherwise semi-autoregressive windows (module docstring);
    ``stride`` defaults to ``block_length // 2``. Returns ``(tokens [B, L], denoiser calls, steps)``.
    Known positions are never changed.
    """
    known = x != mask_id
    original = x.clone()
    x = x.clone()
    calls = steps = 0
    for lo, end in window_spans(x.shape[1], block_length, stride):
        window = x[:, lo:end]
        if bool((window == mask_id).any()):
            res = sample_window(x_init=window.clone(), generator=generator)
            calls += int(res.num_denoiser_calls)
            steps += int(res.num_steps)
            x[:, lo:end] = res.tokens
    x = torch.where(known, original, x)  # samplers keep known tokens; re-impose defensively
    return x, calls, steps


def gc_fraction(tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """GC fraction (float64 [B]) among A/C/G/T at ``positions`` (bool [B, L] or [L]; default all);
    NaN for rows without any A/C/G/T there."""
    acgt = (tokens >= V.A_ID) & (tokens <= V.T_ID)
    if positions is not None:
        acgt = acgt & positions.to(torch.bool).expand_as(tokens)
    gc = ((tokens == V.C_ID) | (tokens == V.G_ID)) & acgt
    n = acgt.sum(-1).to(torch.float64)
    return torch.where(n > 0, gc.sum(-1).to(torch.float64) / n.clamp(min=1), torch.full_like(n, float("nan")))


def gc_accept(gc: torch.Tensor, target: float | None, tolerance: float) -> torch.Tensor:
    """bool [B]: rows with ``|gc - target| <= tolerance`` (all True when ``target`` is None)."""
    if target is None:
        return torch.ones_like(gc, dtype=torch.bool)
    return (gc - float(target)).abs() <= float(tolerance) + 1e-12
