#!/usr/bin/env python
"""Random 1,024-bp window throughput: encoded cache vs the HyenaDNA/Caduceus approach. Prints JSON.

Both approaches produce the same thing, a ``torch.LongTensor [L]`` of Caduceus token ids per window
(reverse-complemented with probability ``--rc-prob``), for the same random windows of the real hg38
chr2 slice (``../shared/data/hg38_chr2_slice`` or ``$GENODIFF_SHARED/data/...``):

* ``baseline`` (HyenaDNA / Caduceus ``FastaInterval`` style): pyfaidx fetch per window, ``.upper()``,
  string reverse complement with a per-character Python loop, per-character dict tokenization,
  ``torch.LongTensor(list)``. (The real code goes through a Hugging Face ``CharacterTokenizer``, which is
  slower still, so this baseline is generous.) pyfaidx needs a plain/bgzip FASTA: the gzip slice is
  decompressed into a temporary directory first (not timed).
* ``cache_item``: :class:`genodiff.data.genome.windows.GenomeWindowDataset` ``__getitem__`` per window
  (memmap slice + lookup-table RC + one ``astype``), i.e. what a DataLoader worker does.
* ``cache_batch``: ``GenomeWindowDataset.get_batch`` (one vectorized gather per batch of 256).

Every window is checked to give identical tokens with both approaches (``outputs_match``).

Usage: ``python perf/bench_windows.py [--n-baseline 3000] [--n-cache 60000] [--length 1024]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genodiff.data.genome.cache import build_encoded_cache  # noqa: E402
from genodiff.data.genome.intervals import Windows  # noqa: E402
from genodiff.data.genome.windows import GenomeWindowDataset  # noqa: E402
from genodiff.data.genome.vocab import TOKENS  # noqa: E402


def _shared() -> Path:
    return Path(os.environ.get("GENODIFF_SHARED", REPO.parent / "shared"))


# ----------------------------------------------------------------------------- baseline (HyenaDNA style)
_COMP = {"A": "T", "T": "A", "C": "G", "G": "C", "N": "N", "a": "t", "t": "a", "c": "g", "g": "c", "n": "n"}
_VOCAB = {t: i for i, t in enumerate(TOKENS)}
_UNK = _VOCAB["[UNK]"]


def string_reverse_complement(seq: str) -> str:
    rev = ""
    for base in seq[::-1]:
        rev += _COMP.get(base, base)
    return rev


def baseline_window(fasta, chrom: str, start: int, end: int, rc: bool, chrom_len: int) -> torch.Tensor:
    left = max(0, -start)
    right = max(0, end - chrom_len)
    seq = str(fasta[chrom][max(start, 0):min(end, chrom_len)])
    seq = "N" * left + seq + "N" * right
    seq = seq.upper()
    if rc:
        seq = string_reverse_complement(seq)
    ids = [_VOCAB.get(ch, _UNK) for ch in list(seq)]
    return torch.LongTensor(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fasta", default=str(_shared() / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"))
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--n-baseline", type=int, default=3000)
    ap.add_argument("--n-cache", type=int, default=60000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rc-prob", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import pyfaidx

    src = Path(args.fasta)
    if not src.is_file():
        print(json.dumps({"error": f"{src} not found (set GENODIFF_SHARED)"}))
        sys.exit(1)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="genodiff_bench_"))
    try:
        plain = tmp / "genome.fa"
        with gzip.open(src, "rb") as fi, open(plain, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 24)
        t0 = time.perf_counter()
        genome = build_encoded_cache(src, tmp / "cache", progress=False)
        build_s = time.perf_counter() - t0

        chrom = genome.names[0]
        n = genome.lengths[chrom]
        L = args.length
        rng = np.random.default_rng(args.seed)
        n_total = max(args.n_baseline, args.n_cache)
        starts = rng.integers(0, n - L + 1, size=n_total)
        # keep windows with real sequence (the dataset drops windows with > 50 % N)
        win = Windows([chrom], np.zeros(n_total, np.int32), starts, L)
        ds = GenomeWindowDataset(genome, win, rc_prob=args.rc_prob, max_n_fraction=0.5, seed=args.seed)
        n_items = len(ds)
        nb = min(args.n_baseline, n_items)
        nc = min(args.n_cache, n_items)

        fasta = pyfaidx.Fasta(str(plain), as_raw=True, sequence_always_upper=False)
        plan = [ds.window(i) for i in range(nb)]

        # --- baseline
        t0 = time.perf_counter()
        base_out = [baseline_window(fasta, c, s, e, strand == "-", n) for c, s, e, strand in plan]
        base_s = time.perf_counter() - t0

        # Timed loops consume each tensor (a checksum) instead of keeping all of them, as a training
        # loop would; keeping 60k x 8 KiB tensors alive measures page faults, not the data path.
        # --- cache, per item (what a DataLoader worker does)
        t0 = time.perf_counter()
        acc = 0
        for i in range(nc):
            acc += int(ds[i][0])
        item_s = time.perf_counter() - t0

        # --- cache, batched gather
        B = args.batch_size
        t0 = time.perf_counter()
        for i in range(0, nc, B):
            acc += int(ds.get_batch(np.arange(i, min(i + B, nc)))[0, 0])
        batch_s = time.perf_counter() - t0

        # correctness (untimed): identical tokens from all three paths
        item_out = [ds[i] for i in range(nb)]
        match = all(torch.equal(base_out[i], item_out[i]) for i in range(nb))
        flat = torch.cat([ds.get_batch(np.arange(i, min(i + B, nb))) for i in range(0, nb, B)])
        match = match and bool(torch.equal(flat, torch.stack(item_out)))

        base_rate = nb / base_s
        item_rate = nc / item_s
        batch_rate = nc / batch_s
        result = {
            "benchmark": "random_window_throughput",
            "fasta": str(src),
            "window_length": L,
            "rc_prob": args.rc_prob,
            "windows_baseline": nb,
            "windows_cache": nc,
            "baseline_pyfaidx_python_tokenize_windows_per_s": round(base_rate, 1),
            "cache_item_windows_per_s": round(item_rate, 1),
            "cache_batch_windows_per_s": round(batch_rate, 1),
            "ratio_item_vs_baseline": round(item_rate / base_rate, 1),
            "ratio_batch_vs_baseline": round(batch_rate / base_rate, 1),
            "cache_build_s": round(build_s, 3),
            "outputs_match": bool(match),
            "goal_20x_met": bool(item_rate / base_rate >= 20),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pyfaidx": pyfaidx.__version__,
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
        }
        fasta.close()
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
