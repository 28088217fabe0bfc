"""Figures for reports, drawn without pyplot so the caller's matplotlib backend (e.g. Jupyter's) is untouched."""

from __future__ import annotations


def new_figure(figsize: tuple[float, float]):
    """A (Figure, Axes) pair not registered with pyplot; save it with ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()
