"""Small helpers shared by the analysis notebooks (notebooks/src/*.py).

Needs the ``notebooks`` extra (matplotlib, IPython) only when :func:`save_figure` is called.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from genodiff.data.manifest import shared_root

__all__ = ["default_output", "save_figure", "shared_root", "shared_data"]


def default_output(name: str) -> Path:
    """notebooks/_output/<name>, whether Jupyter was started in the repository or in notebooks/."""
    here = Path.cwd()
    return (here if here.name == "notebooks" else here / "notebooks") / "_output" / name


def shared_data() -> Path:
    """The read-only reference data folder, ``shared_root() / "data"``."""
    return shared_root() / "data"


def save_figure(output_dir: Path, fig, name: str) -> Path:
    """Write ``fig`` as a PNG to ``output_dir / name``, close it and display that PNG (whatever matplotlib
    backend is active). Returns the PNG's path."""
    from IPython.display import Image, display  # noqa: PLC0415

    path = Path(output_dir) / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(path)))
    return path
