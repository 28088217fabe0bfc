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
from omegaconf import DictConfig

from genodiff.analysis.markov import MarkovModel
from genodiff.analysis.plots import sample_set_figures
from genodiff.analysis.sequence_stats import kmer_spectrum, motif_hits, shared_fraction, summarize_set
from genodiff.config import to_plain
from genodiff.data.files import atomic_write_text
from genodiff.errors import InputError
from genodiff.generate.conditioning import decode, encode
from genodiff.generate.fasta import DNA_CHARS, read_fasta
from genodiff.tasks.run_folder import output_dir


def _read(path, what: str, max_bases: int) -> list[str]:
    seqs, used = [], 0
    for _, s in read_fasta(path, allowed=DNA_CHARS, what=what):
        if used >= max_bases:
            break
        seqs.append(s[: max_bases - used])
        used += len(seqs[-1])
    return seqs


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
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    plots = sample_set_figures(out, sets, stats, kmax)
    public = {label: {k: v for k, v in s.items() if not k.startswith("_")} for label, s in stats.items()}
    for label, s in stats.items():
        public[label]["gc_values"] = [None if np.isnan(x) else float(x) for x in s["_gc"]]
    results = {"kmax": kmax, "homopolymer_min": int(cfg.get("homopolymer_min", 5)),
               "repeat_min_copies": int(cfg.get("repeat_min_copies", 3)),
               "inputs": {k: str(cfg.get(k)) for k in ("samples", "reference", "ar", "markov")},
               "markov_fit": markov_fit, "sets": public, "plots": plots,
               "config": to_plain(cfg)}
    report = render_report(results, plots)
    atomic_write_text(out / "report.md", report)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    print(report)
    return results
