"""Keep freed tensor memory in the process heap instead of handing it back to the OS (glibc only).

A CPU forward of a Caduceus model allocates and frees tens of megabytes of activations per call
(projections, residual adds, the mixer's buffers: 8 MB each for 20 x 1,024 x 96 float32). glibc serves
blocks above its mmap threshold with fresh ``mmap`` pages and unmaps them on free, and trims the heap top
when a large free block sits there, so every call touches new pages: one page fault per 4 KiB (~2,000
per 8 MB tensor), which on the development VM cost ~30% of a tiny-model denoiser call (perf/README.md,
"Denoiser call on CPU"). Raising the mmap and trim thresholds lets freed blocks be reused without faults.

The cost: up to ``trim_bytes`` (1 GiB) of free heap stays with the process instead of going back to the OS,
so a long-running process (``genodiff serve``, training) keeps a resident size near its peak; blocks above
``max_block_bytes`` (glibc's ceiling for the mmap threshold, 32 MiB on 64-bit) are still mmap-ed and unmapped.
``GENODIFF_KEEP_FREED_MEMORY=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MAX_MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: larger values are refused
_applied: dict[str, int] = {}


def keep_freed_memory(max_block_bytes: int = _MAX_MMAP_THRESHOLD, trim_bytes: int = 1 << 30) -> bool:
    """Serve blocks up to ``max_block_bytes`` from the heap and keep up to ``trim_bytes`` of free heap top.

    Process-wide and idempotent; called by the CLI before a job runs. Returns True when applied (Linux with
    glibc), False elsewhere (other C libraries manage memory their own way; nothing is changed) and when
    ``GENODIFF_KEEP_FREED_MEMORY`` is ``0``.
    """
    if not sys.platform.startswith("linux") or os.environ.get("GENODIFF_KEEP_FREED_MEMORY", "") == "0":
        return False
    if _applied.get("mmap") == max_block_bytes and _applied.get("trim") == trim_bytes:
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols already loaded: libc, without find_library's subprocess
    except (OSError, AttributeError):  # a C library without mallopt (musl's stub returns 0: not applied)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, min(int(max_block_bytes), _MAX_MMAP_THRESHOLD)) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, min(int(trim_bytes), 2**31 - 1)) == 1 and ok
    if ok:
        _applied.update(mmap=max_block_bytes, trim=trim_bytes)
    return ok
