"""Order-k Markov chains over A, C, G, T: the one counting, smoothing, table I/O and sampling core.

Sequences are 2-bit code arrays (:mod:`genodiff.data.genome.alphabet`: A0 C1 G2 T3, -1 for anything else,
which breaks the chain). ``counts[s, b]`` of an order-``k`` table is how often base ``b`` followed the
``k``-mer ``s`` (``s`` the base-4 index of the k-mer, first base most significant), i.e. the count of the
(k+1)-mer ``s * 4 + b``. Probabilities use additive smoothing ``(count + alpha) / (row sum + 4 alpha)``.

Users: the demo genome (:mod:`genodiff.data.genome.demo`: the committed order-5 table fitted on real DNA,
and fast lock-step sampling) and the Markov baseline of reports (:mod:`genodiff.analysis.markov`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from genodiff.data.files import atomic_write_text
from genodiff.data.genome.alphabet import BASES, BYTE_TO_BASE4, kmer_index, reverse_complement_base4
from genodiff.data.genome.fasta import FastaScanner

#: name of the committed order-5 table (fitted on hg38 chr2:1-2,000,000) inside ``genodiff/resources``.
MARKOV_TABLE = "markov_order5_hg38_chr2.tsv"


def transition_counts(sequences: Iterable[np.ndarray], order: int, both_strands: bool = False) -> np.ndarray:
    """int64 ``(4**order, 4)`` counts of every (order+1)-mer of A/C/G/T codes in ``sequences``.

    Each element of ``sequences`` is a separate 1-D code array (-1 breaks the chain). With ``both_strands``
    the reverse complement of every sequence is counted too.
    """
    size = 4 ** (order + 1)
    counts = np.zeros(size, dtype=np.int64)
    for codes in sequences:
        strands = (codes, reverse_complement_base4(codes)) if both_strands else (codes,)
        for strand in strands:
            index, valid = kmer_index(strand, order + 1)
            counts += np.bincount(index[valid], minlength=size)
    return counts.reshape(4 ** order, 4)


def smoothed(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """float64 ``counts + alpha`` (additive smoothing; normalise each row to get probabilities)."""
    return counts.astype(np.float64) + alpha


@dataclass(frozen=True)
class MarkovTable:
    """Order-``k`` transition counts: ``counts[s, b]`` = how often base ``b`` followed the ``k``-mer ``s``.

    ``s`` is the 2-bit big-endian code of the k-mer (``A=0 C=1 G=2 T=3``, first base most significant).
    """

    k: int
    counts: np.ndarray  # (4**k, 4) int64

    @property
    def probabilities(self) -> np.ndarray:
        """Row-normalised transition probabilities (add-one smoothed)."""
        c = smoothed(self.counts, 1.0)
        return c / c.sum(axis=1, keepdims=True)

    def log_probs(self, alpha: float = 1.0) -> np.ndarray:
        """Natural-log transition probabilities, ``alpha``-smoothed: shape ``(4**k, 4)``."""
        c = smoothed(self.counts, alpha)
        return np.log(c) - np.log(c.sum(axis=1, keepdims=True))

    def base_frequencies(self) -> np.ndarray:
        """A, C, G, T frequencies of the fitted data."""
        return self.counts.sum(axis=0) / self.counts.sum()

    def dinucleotide_frequencies(self) -> np.ndarray:
        """(4, 4) frequencies of dinucleotides (last context base, next base) of the fitted data."""
        c = self.counts.reshape(4 ** (self.k - 1), 4, 4).sum(axis=0).astype(np.float64)
        return c / c.sum()


def _fasta_codes(path: str | os.PathLike) -> Iterable[np.ndarray]:
    """The 2-bit codes of every record of a FASTA file (plain, gzip or bgzip; validated while read)."""
    scanner = FastaScanner(path, count_stats=False)
    chunks: list[np.ndarray] = []
    for event in scanner.events():
        if event[0] == "record":
            if chunks:
                yield np.concatenate(chunks)
            chunks = []
        else:
            chunks.append(BYTE_TO_BASE4[event[1]])
    if chunks:
        yield np.concatenate(chunks)


def fit_markov_table(fasta_paths: str | os.PathLike | Sequence[str | os.PathLike], k: int = 5,
                     both_strands: bool = True) -> MarkovTable:
    """Count order-``k`` transitions in FASTA file(s) (plain or gzip), case-folded, skipping non-ACGT.

    With ``both_strands`` the reverse complement is counted too (the genome is strand-symmetric),
    which makes the table (and the generated genome) reverse-complement symmetric.
    """
    if isinstance(fasta_paths, (str, os.PathLike)):
        fasta_paths = [fasta_paths]
    counts = sum(transition_counts(_fasta_codes(path), k, both_strands) for path in fasta_paths)
    if not isinstance(counts, np.ndarray):  # no paths
        counts = np.zeros((4 ** k, 4), dtype=np.int64)
    return MarkovTable(k=k, counts=counts)


def _kmer_string(code: int, k: int) -> str:
    return "".join(BASES[(code >> (2 * (k - 1 - j))) & 3] for j in range(k))


def write_markov_table(table: MarkovTable, path: str | os.PathLike, source: str = "") -> None:
    """Write ``table`` as a TSV: comment lines, then ``kmer A C G T`` counts, one k-mer per line."""
    lines = [f"# order-{table.k} Markov transition counts (next base after each {table.k}-mer)",
             "# fitted by genodiff.data.genome.demo.fit_markov_table, both strands, case-folded, N skipped"]
    if source:
        lines.append(f"# source: {source}")
    lines.append("kmer\tA\tC\tG\tT")
    for code in range(4 ** table.k):
        lines.append(_kmer_string(code, table.k) + "\t" + "\t".join(str(int(x)) for x in table.counts[code]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_markov_table(path: str | os.PathLike | None = None) -> MarkovTable:
    """Read a table written by :func:`write_markov_table` (default: the committed one)."""
    if path is None:
        text = resources.files("genodiff").joinpath("resources", MARKOV_TABLE).read_text(encoding="ascii")
    else:
        text = Path(path).read_text(encoding="ascii")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, rows = rows[0], rows[1:]
    if header != ["kmer", *BASES] or not rows:
        raise ValueError(f"{path or MARKOV_TABLE}: not a Markov table")
    k = len(rows[0][0])
    counts = np.zeros((4 ** k, 4), dtype=np.int64)
    for row in rows:
        code = 0
        for ch in row[0]:
            code = code * 4 + BASES.index(ch)
        counts[code] = [int(x) for x in row[1:5]]
    return MarkovTable(k=k, counts=counts)


def sample_markov(table: MarkovTable, rng: np.random.Generator, lengths: Sequence[int],
                  chains: int = 512) -> list[np.ndarray]:
    """Sample sequences (uint8 codes 0..3) of the given lengths from the Markov chain.

    For speed all bases are produced by ``chains`` chains stepping in lock-step (vectorised over chains);
    the concatenated chain outputs are cut into the requested lengths. Each chain starts from a
    k-mer drawn from the fitted k-mer distribution.
    """
    total = int(sum(lengths))
    if total == 0:
        return [np.zeros(0, dtype=np.uint8) for _ in lengths]
    k = table.k
    chains = max(1, min(chains, total))
    steps = -(-total // chains)
    cum = np.cumsum(table.probabilities, axis=1)[:, :3]  # (4**k, 3) thresholds
    start_p = table.counts.sum(axis=1).astype(np.float64)
    start_p /= start_p.sum()
    state = np.searchsorted(np.cumsum(start_p), rng.random(chains), side="right").clip(0, 4 ** k - 1)
    mask = 4 ** k - 1
    out = np.empty((chains, steps + k), dtype=np.uint8)
    for j in range(k):  # the initial k-mer of each chain
        out[:, j] = (state >> (2 * (k - 1 - j))) & 3
    u = rng.random((steps, chains))
    for t in range(steps):
        thr = cum[state]
        base = (u[t, :, None] >= thr).sum(axis=1)
        out[:, k + t] = base
        state = ((state << 2) | base) & mask
    flat = out.reshape(-1)
    pieces, pos = [], 0
    for n in lengths:
        pieces.append(flat[pos : pos + n].copy())
        pos += n
    return pieces
