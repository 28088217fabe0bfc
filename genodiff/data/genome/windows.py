"""Torch dataset of fixed-length genome windows read from an encoded cache.

``GenomeWindowDataset(encoded_genome, windows, rc_prob=0.0, max_n_fraction=0.5, seed=0)``:

* item ``i`` is ``torch.LongTensor [L]`` of token ids (A7 C8 G9 T10 N11) of window ``i``
  (``chrom:[start, start + L)``, 0-based half-open; positions past a chromosome end are N);
* with ``softmask_weight=w`` an item is a dict ``{"input_ids": LongTensor [L], "weights": FloatTensor [L]}``
  where soft-masked (lower-case) bases get weight ``w`` and the others 1.0;
* reverse-complement augmentation with probability ``rc_prob``, decided by a hash of
  ``(seed, epoch, index)``: deterministic for a given index and epoch, independent of worker count
  and of access order; call :meth:`GenomeWindowDataset.set_epoch` each epoch to vary it;
* windows whose N fraction exceeds ``max_n_fraction`` are removed at construction, and all-N
  windows always, so no batch can be all N (which would give a NaN loss);
* safe with DataLoader workers (fork or spawn): the memmap is opened lazily in each process.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from genodiff.data.genome.alphabet import COMPLEMENT_IDS as _COMP
from genodiff.data.genome.cache import EncodedGenome
from genodiff.data.genome.intervals import Windows, filter_windows_by_n

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def unit_hash(seed: int, epoch: int, index: int) -> float:
    """Deterministic uniform number in [0, 1) from ``(seed, epoch, index)``."""
    h = _splitmix64(_splitmix64(_splitmix64(int(seed) & _MASK64) ^ (int(epoch) & _MASK64)) ^ (int(index) & _MASK64))
    return (h >> 11) * (1.0 / (1 << 53))


def unit_hash_array(seed: int, epoch: int, index: np.ndarray) -> np.ndarray:
    """Vectorized :func:`unit_hash` over an index array (same values), float64."""
    idx = np.asarray(index, dtype=np.uint64)
    base = np.uint64(_splitmix64(_splitmix64(int(seed) & _MASK64) ^ (int(epoch) & _MASK64)))
    with np.errstate(over="ignore"):
        x = (base ^ idx) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


class GenomeWindowDataset(Dataset):
    """Fixed-length windows of an :class:`EncodedGenome` as token-id tensors.

    Args:
        encoded_genome: the encoded cache (or a cache directory path).
        windows: :class:`Windows` (from :func:`~genodiff.data.genome.intervals.tile_windows`) or an iterable
            of ``(chrom, start, end)`` / :class:`Interval` with a common length (0-based half-open).
        rc_prob: probability of returning the reverse complement of a window.
        max_n_fraction: windows with a larger N fraction (padding counted) are dropped; all-N windows
            are dropped whatever the value.
        seed: seed of the RC decisions.
        softmask_weight: if not None, items are dicts with a per-base ``weights`` tensor.
    """

    def __init__(self, encoded_genome: Union[EncodedGenome, str], windows: Union[Windows, Iterable],
                 rc_prob: float = 0.0, max_n_fraction: float = 0.5, seed: int = 0,
                 softmask_weight: Optional[float] = None):
        if not isinstance(encoded_genome, EncodedGenome):
            encoded_genome = EncodedGenome.open(encoded_genome)
        if not 0.0 <= rc_prob <= 1.0:
            raise ValueError(f"rc_prob must be in [0, 1], got {rc_prob}")
        self.genome = encoded_genome
        if not isinstance(windows, Windows):
            windows = Windows.from_tuples(windows)
        n_before = len(windows)
        windows = filter_windows_by_n(windows, encoded_genome, max_n_fraction)
        self.windows = windows
        self.n_dropped = n_before - len(windows)
        self.length = windows.length
        self.rc_prob = float(rc_prob)
        self.max_n_fraction = float(max_n_fraction)
        self.seed = int(seed)
        self.epoch = 0
        self.softmask_weight = softmask_weight
        code_to_idx = np.asarray([encoded_genome.chrom_index(n) for n in windows.chrom_names], dtype=np.int64)
        self._ci = code_to_idx[windows.chrom_codes] if len(windows) else np.zeros(0, np.int64)
        self._starts = windows.starts
        self._contig_names = encoded_genome.names
        # fast path: global start of each window in tokens.u8, and whether it lies inside its contig
        clen = encoded_genome.contig_lengths[self._ci]
        self._inside = (self._starts >= 0) & (self._starts + self.length <= clen)
        self._gstart = encoded_genome.offsets[self._ci] + self._starts
        self._rev_epoch = None
        self._rev = np.zeros(0, dtype=bool)

    def set_epoch(self, epoch: int) -> None:
        """Change the RC draws (deterministic per (seed, epoch, index))."""
        self.epoch = int(epoch)

    def _reverse_flags(self) -> np.ndarray:
        """RC decision of every item for the current epoch (np.bool_ [N], computed once per epoch)."""
        if self._rev_epoch != (self.epoch, self.seed, self.rc_prob):
            if self.rc_prob > 0.0:
                self._rev = unit_hash_array(self.seed, self.epoch, np.arange(len(self))) < self.rc_prob
            else:
                self._rev = np.zeros(len(self), dtype=bool)
            self._rev_epoch = (self.epoch, self.seed, self.rc_prob)
        return self._rev

    def __len__(self) -> int:
        return len(self.windows)

    def is_reverse(self, index: int) -> bool:
        """Whether item ``index`` is reverse-complemented in the current epoch."""
        return bool(self._reverse_flags()[index])

    def window(self, index: int) -> tuple[str, int, int, str]:
        """``(chrom, start, end, strand)`` of item ``index`` (0-based half-open)."""
        s = int(self._starts[index])
        return (self._contig_names[int(self._ci[index])], s, s + self.length,
                "-" if self.is_reverse(index) else "+")

    def __getitem__(self, index: int):
        n = self._gstart.size
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        rc = self._reverse_flags()[index]
        if self._inside[index]:
            g = self._gstart[index]
            ids = self.genome.tokens[g:g + self.length]
            if rc:
                ids = _COMP[ids[::-1]]
        else:
            s = int(self._starts[index])
            ids = self.genome.fetch(int(self._ci[index]), s, s + self.length, "-" if rc else "+")
        t = torch.from_numpy(ids.astype(np.int64))
        if self.softmask_weight is None:
            return t
        ci = int(self._ci[index])
        s = int(self._starts[index])
        m = self.genome.fetch_softmask(ci, s, s + self.length, "-" if rc else "+")
        w = np.where(m, np.float32(self.softmask_weight), np.float32(1.0)).astype(np.float32)
        return {"input_ids": t, "weights": torch.from_numpy(w)}

    def get_batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Vectorized batch of items (same values as ``__getitem__``): LongTensor [B, L]."""
        idx = np.asarray(indices, dtype=np.int64)
        rev = None
        if self.rc_prob > 0.0:
            rev = unit_hash_array(self.seed, self.epoch, idx) < self.rc_prob
        out = self.genome.fetch_batch(self._ci[idx], self._starts[idx], self.length, rev)
        return torch.from_numpy(out.astype(np.int64))
