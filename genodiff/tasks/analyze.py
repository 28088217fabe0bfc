"""``genodiff analyze``: how close are generated sequences to a reference set?

Inputs (FASTA, read with Biopython): ``samples`` (required), ``reference`` (required), optional ``ar`` and
``markov`` sample FASTAs, ``extra`` ({label: FASTA}), and ``markov_order=k`` to fit an order-k Markov chain
on the reference and sample it with the same lengths as ``samples``. For every set: GC distribution, k-mer
spectra (k = 1..``kmax``) and their Jensen-Shannon divergence (bits) to the reference, homopolymer and
short tandem repeat statistics, N fraction, duplicate fraction, fraction copied verbatim from the reference,
and optional JASPAR motif hits per kb. The reference itself is included as a row (its JS divergence is 0).

Outputs: ``report.md``, ``results.json``, ``gc.png``, ``kmer_js.png``, ``homopolymer.png``,
``kmer3_scatter.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from genodiff.errors import InputError


def _output_dir(cfg: DictConfig) -> Path:
    from genodiff.tasks.train import output_dir

    return output_dir(cfg)


def _read(path, what: str, max_bases: int) -> list[str]:
    from genodiff.generate.fasta import DNA_CHARS, read_fasta

    seqs, used = [], 0
    for _, s in read_fasta(path, allowed=DNA_CHARS, what=what):
        if used >= max_bases:
            break
        seqs.append(s[: max_bases - used])
        used += len(seqs[-1])
    return seqs


def _plots(out: Path, sets: dict, stats: dict, kmax: int) -> list[str]:
    from genodiff.analysis.plots import new_figure

    files = []
    fig, ax = new_figure(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for label in sets:
        gc = stats[label]["_gc"]
        gc = gc[~np.isnan(gc)]
        if gc.size:
            ax.hist(gc, bins=bins, histtype="step", density=True, label=label, linewidth=1.5)
    ax.set_xlabel("GC fraction per sequence")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "gc.png", dpi=100)
    files.append("gc.png")

    fig, ax = new_figure(figsize=(6, 4))
    for label in sets:
        js = stats[label].get("kmer_js_bits")
        if js and label != "reference":
            ks = sorted(js)
            ax.plot(ks, [js[k] for k in ks], marker="o", label=label)
    ax.set_xlabel("k")
    ax.set_ylabel("JS divergence to reference (bits)")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "kmer_js.png", dpi=100)
    files.append("kmer_js.png")

    fig, ax = new_figure(figsize=(6, 4))
    for label in sets:
        dist = np.asarray(stats[label]["homopolymer"]["length_distribution"])
        if dist.sum() > 0:
            ax.plot(np.arange(1, dist.size + 1), dist, marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("homopolymer run length (last bin: >= 20)")
    ax.set_ylabel("share of runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "homopolymer.png", dpi=100)
    files.append("homopolymer.png")

    k = min(3, kmax)
    ref = stats["reference"]["_spectra"][k]
    fig, ax = new_figure(figsize=(5, 5))
    for label in sets:
        if label != "reference":
            ax.scatter(ref, stats[label]["_spectra"][k], s=8, label=label, alpha=0.7)
    hi = max(float(ref.max()), 1e-6) * 1.1
    ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8)
    ax.set_xlabel(f"reference {k}-mer frequency")
    ax.set_ylabel(f"{k}-mer frequency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"kmer{k}_scatter.png", dpi=100)
    files.append(f"kmer{k}_scatter.png")
    return files


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_report(results: dict, plots: list[str]) -> str:
    sets = results["sets"]
    kmax = results["kmax"]
    lines = ["# genodiff analyze", "",
             f"Reference: `{results['inputs']['reference']}`. JS = Jensen-Shannon divergence of k-mer spectra to "
             "the reference, in bits (0 = identical). Homopolymer: runs of >= "
             f"{results['homopolymer_min']} identical bases. STR: bases in tandem repeats (unit 1-6 bp, >= "
             f"{results['repeat_min_copies']} copies). JS divergence of high-order spectra is biased upward for small "
             "sets (unseen k-mers): compare sets of similar size; a Markov row gives a floor.", "",
             "| set | seqs | bases | GC mean ± sd | " + " | ".join(f"JS k={k}" for k in range(1, kmax + 1))
             + " | homopolymer frac | longest run (mean) | STR frac | N frac | duplicates | in reference |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in range(kmax)) + " | ---: | ---: | ---: | ---: "
             "| ---: | ---: |"]
    for label, s in sets.items():
        js = s.get("kmer_js_bits", {})
        lines.append(
            f"| {label} | {s['num_sequences']} | {s['total_bases']} | {_fmt(s['gc_mean'], 3)} ± {_fmt(s['gc_std'], 3)} | "
            + " | ".join(_fmt(js.get(k), 5) for k in range(1, kmax + 1))
            + f" | {_fmt(s['homopolymer']['fraction_in_runs'])} | {_fmt(s['homopolymer']['longest_mean'], 1)} | "
            f"{_fmt(s['tandem_repeats']['any'])} | {_fmt(s['n_fraction'])} | {_fmt(s['duplicate_fraction'])} | "
            f"{_fmt(s.get('in_reference_fraction'))} |")
    if any("motifs_per_kb" in s for s in sets.values()):
        names = sorted({m for s in sets.values() for m in s.get("motifs_per_kb", {})})
        lines += ["", "Motif hits per kb (both strands):", "", "| set | " + " | ".join(names) + " |",
                  "| --- | " + " | ".join("---:" for _ in names) + " |"]
        for label, s in sets.items():
            lines.append(f"| {label} | " + " | ".join(_fmt(s.get("motifs_per_kb", {}).get(n), 3) for n in names) + " |")
    if results.get("markov_fit"):
        lines += ["", f"Markov baseline: order-{results['markov_fit']['order']} chain fitted on the reference, "
                      "sampled with the same lengths as the generated set."]
    lines += [""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    from genodiff.analysis.sequence_stats import kmer_spectrum, motif_hits, shared_fraction, summarize_set
    from genodiff.generate.fasta import atomic_write_text

    if not cfg.get("samples"):
        raise InputError("samples: required (FASTA of generated sequences)")
    if not cfg.get("reference"):
        raise InputError("reference: required (FASTA of reference sequences)")
    kmax = int(cfg.get("kmax", 6))
    if not 1 <= kmax <= 10:
        raise InputError(f"kmax: must be in 1..10, got {kmax}")
    max_bases = int(cfg.get("max_bases", 20_000_000))
    sets: dict[str, list[str]] = {"reference": _read(cfg.reference, "reference", max_bases),
                                  "samples": _read(cfg.samples, "samples", max_bases)}
    for key in ("ar", "markov"):
        if cfg.get(key):
            sets[key] = _read(cfg[key], key, max_bases)
    for label, path in dict(cfg.get("extra") or {}).items():
        sets[str(label)] = _read(path, f"extra.{label}", max_bases)
    markov_fit = None
    if cfg.get("markov_order") is not None:
        from genodiff.analysis.markov import MarkovModel
        from genodiff.generate.conditioning import decode, encode

        order = int(cfg.markov_order)
        if not 0 <= order <= 12:
            raise InputError(f"markov_order: must be in 0..12, got {order}")
        model = MarkovModel.fit([encode(s) for s in sets["reference"]], order)
        rng = np.random.default_rng(int(cfg.get("seed", 0)))
        sets[f"markov{order}_fit"] = [decode(model.sample(len(s), rng)) for s in sets["samples"]]
        markov_fit = {"order": order}
    ref_spectra = {k: kmer_spectrum(sets["reference"], k) for k in range(1, kmax + 1)}
    stats = {}
    for label, seqs in sets.items():
        s = summarize_set(seqs, ref_spectra, kmax, int(cfg.get("homopolymer_min", 5)),
                          int(cfg.get("repeat_min_copies", 3)))
        if label != "reference":
            s["in_reference_fraction"] = shared_fraction(seqs, sets["reference"])
        if cfg.get("motifs"):
            if not Path(str(cfg.motifs)).is_file():
                raise InputError(f"motifs: {cfg.motifs}: file not found")
            try:
                s["motifs_per_kb"] = motif_hits(seqs, str(cfg.motifs), float(cfg.get("motif_threshold", 0.8)))
            except (ValueError, KeyError, IndexError) as exc:
                raise InputError(f"motifs: {cfg.motifs}: not a JASPAR matrix file ({exc})") from None
        stats[label] = s
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, sets, stats, kmax)
    public = {label: {k: v for k, v in s.items() if not k.startswith("_")} for label, s in stats.items()}
    for label, s in stats.items():
        public[label]["gc_values"] = [None if np.isnan(x) else float(x) for x in s["_gc"]]
    results = {"kmax": kmax, "homopolymer_min": int(cfg.get("homopolymer_min", 5)),
               "repeat_min_copies": int(cfg.get("repeat_min_copies", 3)),
               "inputs": {k: str(cfg.get(k)) for k in ("samples", "reference", "ar", "markov")},
               "markov_fit": markov_fit, "sets": public, "plots": plots,
               "config": OmegaConf.to_container(cfg, resolve=True)}
    report = render_report(results, plots)
    atomic_write_text(out / "report.md", report)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    print(report)
    return results
