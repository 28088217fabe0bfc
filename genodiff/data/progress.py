"""The one progress bar of genodiff (tqdm on stderr), for every long loop of every job."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str = "", enabled: bool = True, *, unit: str = "it",
                 bytes_: bool = False, initial: int = 0, leave: bool = True) -> tqdm:
    """A tqdm bar on stderr showing done/total, rate and time left; ``update(n)`` advances it, ``close()`` ends it.

    Disabled (a no-op bar) when ``enabled`` is false. ``bytes_=True`` shows sizes in KiB/MiB (downloads)."""
    return tqdm(total=total, desc=desc, disable=not enabled, unit="B" if bytes_ else unit, unit_scale=bytes_,
                unit_divisor=1024 if bytes_ else 1000, initial=initial, file=sys.stderr, leave=leave,
                dynamic_ncols=True)
