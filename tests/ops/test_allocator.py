"""keep_freed_memory: freed 8 MB tensors' pages are reused (no new page faults) once it is applied; with
thresholds that keep nothing (the negative control) every reallocation faults its pages in again, so the
count has power. (glibc's default adapts its threshold and sometimes settles, sometimes not: no control.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")

_PROBE = """
import resource, sys
import torch
from genodiff.ops.allocator import keep_freed_memory
small = 128 << 10
applied = keep_freed_memory() if sys.argv[1] == "1" else keep_freed_memory(small, small)
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ts = [torch.ones(2_000_000) for _ in range(3)]  # 3 x 8 MB live at once, every page touched, as in a forward
    del ts
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, min(faults[2:]))
"""


def _faults(apply: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE, "1" if apply else "0"], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return out[0], int(out[1])


def test_reallocation_reuses_pages_only_when_applied():
    applied, with_setting = _faults(True)
    _, without = _faults(False)
    if applied != "True":
        pytest.skip("mallopt not available (not glibc)")
    assert without > 5000, without  # 24 MB = 5,859 pages of 4 KiB, faulted in again on every allocation
    assert with_setting < 100, with_setting


class _FakeLibc:
    """Stands in for libc: records mallopt calls and answers ``answer`` (1 = accepted)."""

    def __init__(self, answer: int):
        self.calls = []
        fake = self

        class _Mallopt:  # a callable instance, so the module can set argtypes/restype on it
            def __call__(self, param, value):
                fake.calls.append((param, value))
                return answer

        self.mallopt = _Mallopt()


def _patched(monkeypatch, answer: int) -> _FakeLibc:
    from genodiff.ops import allocator

    libc = _FakeLibc(answer)
    monkeypatch.setattr(allocator, "_applied", {})
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv("GENODIFF_KEEP_FREED_MEMORY", raising=False)
    return libc


def test_sets_both_thresholds_once(monkeypatch):
    from genodiff.ops import allocator

    libc = _patched(monkeypatch, answer=1)
    assert allocator.keep_freed_memory() is True
    assert libc.calls == [(-3, 32 << 20), (-1, 1 << 30)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    assert allocator.keep_freed_memory() is True and len(libc.calls) == 2  # idempotent: no second mallopt
    assert allocator.keep_freed_memory(64 << 20, 1 << 20) is True
    assert libc.calls[2:] == [(-3, 32 << 20), (-1, 1 << 20)]  # new values; the mmap threshold capped at 32 MiB


def test_refused_or_switched_off(monkeypatch):
    from genodiff.ops import allocator

    libc = _patched(monkeypatch, answer=0)  # e.g. musl's stub, or values glibc refuses
    assert allocator.keep_freed_memory() is False
    assert allocator.keep_freed_memory() is False and len(libc.calls) == 4  # not recorded as applied: retried
    libc = _patched(monkeypatch, answer=1)
    monkeypatch.setenv("GENODIFF_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False and libc.calls == []
