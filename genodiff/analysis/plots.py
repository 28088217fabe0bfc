"""Figures for reports, drawn without pyplot so the caller's matplotlib backend (e.g. Jupyter's) is untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]):
    """A (Figure, Axes) pair not registered with pyplot; save it with ``fig.savefig(path)``."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def finish_figure(fig: Figure, ax, path: Path, *, xlabel: str, ylabel: str, dpi: int = 100) -> str:
    """Label the axes, add the legend, save ``fig`` as a PNG at ``path``; returns the file name."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path).name


def sample_set_figures(out: Path, sets: dict, stats: dict, kmax: int) -> list[str]:
    """The figures of ``genodiff analyze`` (GC, k-mer JS by k, homopolymer runs, k-mer scatter) as PNGs in ``out``;
    ``stats[label]`` are :func:`~genodiff.analysis.sequence_stats.summarize_set` results. Returns the file names."""
    files = []
    fig, ax = new_figure(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for label in sets:
        gc = stats[label]["_gc"]
        gc = gc[~np.isnan(gc)]
        if gc.size:
            ax.hist(gc, bins=bins, histtype="step", density=True, label=label, linewidth=1.5)
    files.append(finish_figure(fig, ax, out / "gc.png", xlabel="GC fraction per sequence", ylabel="density"))

    fig, ax = new_figure(figsize=(6, 4))
    for label in sets:
        js = stats[label].get("kmer_js_bits")
        if js and label != "reference":
            ks = sorted(js)
            ax.plot(ks, [js[k] for k in ks], marker="o", label=label)
    ax.set_yscale("symlog", linthresh=1e-4)
    files.append(finish_figure(fig, ax, out / "kmer_js.png", xlabel="k", ylabel="JS divergence to reference (bits)"))

    fig, ax = new_figure(figsize=(6, 4))
    for label in sets:
        dist = np.asarray(stats[label]["homopolymer"]["length_distribution"])
        if dist.sum() > 0:
            ax.plot(np.arange(1, dist.size + 1), dist, marker=".", label=label)
    ax.set_yscale("log")
    files.append(finish_figure(fig, ax, out / "homopolymer.png", xlabel="homopolymer run length (last bin: >= 20)",
                               ylabel="share of runs"))

    k = min(3, kmax)
    ref = stats["reference"]["_spectra"][k]
    fig, ax = new_figure(figsize=(5, 5))
    for label in sets:
        if label != "reference":
            ax.scatter(ref, stats[label]["_spectra"][k], s=8, label=label, alpha=0.7)
    hi = max(float(ref.max()), 1e-6) * 1.1
    ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8)
    files.append(finish_figure(fig, ax, out / f"kmer{k}_scatter.png", xlabel=f"reference {k}-mer frequency",
                               ylabel=f"{k}-mer frequency"))
    return files
