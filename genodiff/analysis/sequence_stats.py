"""Statistics of sets of DNA sequences, to compare generated sequences with a reference set.

All functions take plain Python strings (upper case; ``N`` and other IUPAC codes allowed) and return numpy
arrays / floats. GC content uses :func:`Bio.SeqUtils.gc_fraction` (ambiguous bases removed from the
denominator); motif hits use :mod:`Bio.motifs` position-specific scoring matrices.

* :func:`kmer_spectrum` -- normalized counts of the 4^k k-mers over A/C/G/T (k-mers containing any other
  character are skipped), read on the given strand, index ``sum_i code_i 4^(k-1-i)`` with A0 C1 G2 T3.
* :func:`js_divergence` -- Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint supports).
* :func:`homopolymer_stats` -- run lengths of identical A/C/G/T bases.
* :func:`tandem_repeat_fraction` -- fraction of bases inside a tandem repeat of a unit of u bp repeated
  >= ``min_copies`` times (u = 1..6). A repeat of period u also counts for multiples of u (``AAAAAA`` is a
  (AA)x3 too), so the per-unit fractions overlap; ``any`` is the fraction covered by at least one.
* :func:`duplicate_fraction` -- fraction of sequences identical to an earlier one in the same set;
  :func:`shared_fraction` -- fraction found verbatim in another set (memorization check).
"""

from __future__ import annotations

import numpy as np
from Bio import motifs
from Bio.Seq import Seq
from Bio.SeqUtils import gc_fraction

from genodiff.data.genome.alphabet import BYTE_TO_BASE4, kmer_index

__all__ = ["codes_of", "gc_values", "kmer_spectrum", "js_divergence", "homopolymer_stats", "tandem_repeat_fraction",
           "n_fraction", "duplicate_fraction", "shared_fraction", "motif_hits", "summarize_set"]

def codes_of(seq: str) -> np.ndarray:
    """int8 [L]: A0 C1 G2 T3, -1 for anything else."""
    return BYTE_TO_BASE4[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def gc_values(seqs) -> np.ndarray:
    """GC fraction per sequence (float64 [N]; NaN when a sequence has no A/C/G/T)."""
    out = []
    for s in seqs:
        acgt = int((codes_of(s) >= 0).sum())
        out.append(gc_fraction(s, ambiguous="remove") if acgt else float("nan"))
    return np.asarray(out, dtype=np.float64)


def kmer_counts(seqs, k: int) -> np.ndarray:
    """float64 [4^k] counts of k-mers over A/C/G/T (see module docstring)."""
    counts = np.zeros(4 ** k, dtype=np.float64)
    for s in seqs:
        idx, valid = kmer_index(codes_of(s), k)
        counts += np.bincount(idx[valid], minlength=4 ** k)
    return counts


def kmer_spectrum(seqs, k: int) -> np.ndarray:
    """Normalized k-mer frequencies (float64 [4^k], sums to 1; all zero when no k-mer was seen)."""
    c = kmer_counts(seqs, k)
    total = c.sum()
    return c / total if total > 0 else c


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (bits) between two distributions given as non-negative vectors."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def _runs(eq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (half-open) of the maximal runs of True in a bool vector."""
    m = np.concatenate([[False], eq, [False]]).astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def homopolymer_stats(seqs, min_length: int = 5, max_bin: int = 20) -> dict:
    """Run-length statistics of identical A/C/G/T bases.

    Returns ``fraction_in_runs`` (bases in runs >= min_length / A,C,G,T bases), ``longest_mean`` (mean over
    sequences of the longest run), ``longest_max``, ``runs_per_kb`` (runs >= min_length per 1,000 bases) and
    ``length_distribution`` (float64 [max_bin]: share of runs of length 1..max_bin, the last bin >= max_bin).
    """
    in_runs = total = n_runs = 0
    longest = []
    hist = np.zeros(max_bin, dtype=np.float64)
    for s in seqs:
        c = codes_of(s)
        if c.size == 0:
            continue
        # runs: split where the base changes or is not ACGT
        valid = c >= 0
        change = np.concatenate([[True], c[1:] != c[:-1]])
        starts = np.flatnonzero(change)
        ends = np.concatenate([starts[1:], [c.size]])
        lengths = (ends - starts)[valid[starts]]
        total += int(valid.sum())
        if lengths.size:
            longest.append(int(lengths.max()))
            long = lengths[lengths >= min_length]
            in_runs += int(long.sum())
            n_runs += int(long.size)
            hist += np.bincount(np.minimum(lengths, max_bin) - 1, minlength=max_bin)[:max_bin]
    return {"fraction_in_runs": in_runs / max(total, 1), "longest_mean": float(np.mean(longest)) if longest else 0.0,
            "longest_max": int(max(longest)) if longest else 0, "runs_per_kb": 1000.0 * n_runs / max(total, 1),
            "length_distribution": (hist / hist.sum()).tolist() if hist.sum() else hist.tolist()}


def tandem_repeat_fraction(seqs, max_unit: int = 6, min_copies: int = 3) -> dict:
    """Fraction of A/C/G/T bases inside tandem repeats, per unit length 1..max_unit and ``any``."""
    covered = {u: 0 for u in range(1, max_unit + 1)}
    any_cov = total = 0
    for s in seqs:
        c = codes_of(s)
        total += int((c >= 0).sum())
        cov_any = np.zeros(c.size, dtype=bool)
        for u in range(1, max_unit + 1):
            if c.size <= u:
                continue
            eq = (c[u:] == c[:-u]) & (c[u:] >= 0)
            cov = np.zeros(c.size, dtype=bool)
            for st, en in zip(*_runs(eq)):
                if en - st >= (min_copies - 1) * u:  # run of r matches spans r + u bases = (r+u)/u copies
                    cov[st:en + u] = True
            covered[u] += int(cov.sum())
            cov_any |= cov
        any_cov += int(cov_any.sum())
    out = {f"unit_{u}": covered[u] / max(total, 1) for u in covered}
    out["any"] = any_cov / max(total, 1)
    return out


def n_fraction(seqs) -> float:
    """Fraction of characters that are not A/C/G/T."""
    total = sum(len(s) for s in seqs)
    bad = sum(int((codes_of(s) < 0).sum()) for s in seqs)
    return bad / max(total, 1)


def duplicate_fraction(seqs) -> float:
    """Fraction of sequences identical to an earlier sequence of the same set."""
    seqs = list(seqs)
    if not seqs:
        return 0.0
    return 1.0 - len(set(seqs)) / len(seqs)


def shared_fraction(seqs, other) -> float:
    """Fraction of ``seqs`` that occur verbatim in ``other`` (e.g. generated sequences copied from training)."""
    seqs = list(seqs)
    ref = set(other)
    return sum(s in ref for s in seqs) / max(len(seqs), 1)


def motif_hits(seqs, motif_file: str, relative_threshold: float = 0.8) -> dict:
    """Hits per kb (both strands) of each JASPAR matrix in ``motif_file`` (``Bio.motifs.parse(..., 'jaspar')``).

    A hit is a window whose PSSM log-odds score (pseudocount 0.5 per base, uniform background) is >=
    ``min + relative_threshold * (max - min)`` of that matrix. Windows overlapping non-ACGT are skipped.
    """
    with open(motif_file) as fh:
        ms = list(motifs.parse(fh, "jaspar"))
    out = {}
    total = sum(len(s) for s in seqs)
    for m in ms:
        pssm = m.counts.normalize(pseudocounts=0.5).log_odds()
        thr = pssm.min + relative_threshold * (pssm.max - pssm.min)
        hits = 0
        for s in seqs:
            for chunk in s.replace("N", " ").split():
                if len(chunk) >= m.length:
                    hits += sum(1 for _ in pssm.search(Seq(chunk), threshold=thr, both=True))
        out[f"{m.matrix_id or ''}_{m.name or ''}".strip("_")] = 1000.0 * hits / max(total, 1)
    return out


def summarize_set(seqs, reference_spectra: dict | None = None, kmax: int = 6, homopolymer_min: int = 5,
                  min_copies: int = 3) -> dict:
    """All scalar statistics of one set; with ``reference_spectra`` ({k: spectrum}) also JS divergences."""
    seqs = list(seqs)
    gc = gc_values(seqs)
    spectra = {k: kmer_spectrum(seqs, k) for k in range(1, kmax + 1)}
    out = {
        "num_sequences": len(seqs), "total_bases": int(sum(len(s) for s in seqs)),
        "mean_length": float(np.mean([len(s) for s in seqs])) if seqs else 0.0,
        "gc_mean": float(np.nanmean(gc)) if gc.size and not np.all(np.isnan(gc)) else float("nan"),
        "gc_std": float(np.nanstd(gc)) if gc.size and not np.all(np.isnan(gc)) else float("nan"),
        "n_fraction": n_fraction(seqs), "duplicate_fraction": duplicate_fraction(seqs),
        "homopolymer": homopolymer_stats(seqs, homopolymer_min), "tandem_repeats": tandem_repeat_fraction(
            seqs, 6, min_copies),
    }
    if reference_spectra is not None:
        out["kmer_js_bits"] = {k: js_divergence(spectra[k], reference_spectra[k]) for k in spectra}
    return out | {"_gc": gc, "_spectra": spectra}


