"""The one progress bar of genodiff (tqdm on stderr), for every long loop of every job."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class ProgressBar(tqdm):
    """tqdm whose description changes also reach a web page that mirrors the bar (the app's
    ``gradio.Progress(track_tqdm=True)`` copies a bar's description only when the bar is created)."""

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh)
        tracker = getattr(self, "_progress", None)  # set on the bar by Gradio's tqdm tracking, if any
        for item in getattr(tracker, "iterables", None) or ():
            if getattr(item, "_tqdm", None) is self:
                item.desc = desc


def progress_bar(total: int | None, desc: str = "", enabled: bool = True, *, unit: str = "it",
                 bytes_: bool = False, initial: int = 0, leave: bool = True) -> ProgressBar:
    """A tqdm bar on stderr showing done/total, rate and time left; ``update(n)`` advances it, ``close()`` ends it.

    Disabled (a no-op bar) when ``enabled`` is false. ``bytes_=True`` shows sizes in KiB/MiB (downloads)."""
    return ProgressBar(total=total, desc=desc, disable=not enabled, unit="B" if bytes_ else unit, unit_scale=bytes_,
                       unit_divisor=1024 if bytes_ else 1000, initial=initial, file=sys.stderr, leave=leave,
                       dynamic_ncols=True)
