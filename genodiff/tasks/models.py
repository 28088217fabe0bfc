"""``genodiff models``: the pretrained models bundled with genodiff and the local exports, with their model cards.

* ``genodiff models`` (``action=list``): every bundled model (``genodiff/resources/models/<name>/``, see
  :mod:`genodiff.interop.export`) and every export (a folder with ``genodiff.json`` + ``model.safetensors``)
  found under ``search`` (default ``outputs``), each with its name, parameters, objective, training steps and
  tokens, weights digest, path and the first ``card_lines`` lines of its ``MODEL_CARD.md``. Writes nothing.
* ``genodiff models show <name|path>`` (``action=show target=...``): prints the model card of a bundled
  model (its name or ``bundled:<name>``) or of an export / run folder; an export without a card gets its
  facts and a note that it has no card.

Bundling an export as a package model (``perf/bundle_model.py``, :func:`bundle_export`): the export is
copied into ``genodiff/resources/models/<name>/``, loaded with :func:`~genodiff.interop.export.load_model`
(weights digest checked against the source), ``genodiff.json`` gains the training facts a listing needs
(``training.tokens``, ``global_batch_size``, ``window``, ``data``) and ``MODEL_CARD.md`` is rendered from
:data:`CARD_TEMPLATE` with facts only: the export's spec, the run's Hydra config (``.hydra/config.yaml`` and
``overrides.yaml``), the run's ``summary.json``, the data splits recomputed from the FASTA with the training
code's own :func:`~genodiff.training.datamodule.split_intervals`, and -- when given -- a ``genodiff evaluate``
``results.json`` whose model row must evaluate these very weights on a split disjoint from the training split.
Numbers the run did not record are either passed as ``facts`` (listed as supplied by the maintainer) or
written as "not measured".

Training tokens are ``optimizer steps x global batch size x window length`` (bp the model read; the MDLM loss
covers the masked fraction of them). Parameters are counted once each (tied weights once, buffers not at all).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from genodiff.config import to_plain
from genodiff.data.files import atomic_write_text, file_digest, install_folder, read_json
from genodiff.data.genome.fasta import scan_fasta
from genodiff.errors import InputError
from genodiff.interop.export import (
    BUNDLED_PREFIX,
    CARD_NAME,
    CONFIG_NAME,
    DEFAULT_MODEL,
    WEIGHTS_NAME,
    bundled_models,
    bundled_models_dir,
    load_model,
    parameter_count,
    read_spec,
    resolve_export,
    weights_digest,
)
from genodiff.training.datamodule import GenomeDataConfig, split_intervals

__all__ = ["run", "export_facts", "find_exports", "list_models", "format_listing", "show_card",
           "training_run_facts", "split_facts", "evaluation_facts", "render_card", "bundle_export", "DATA_NOTES"]

#: Data and licence paragraphs for training FASTAs genodiff knows, keyed by file name (the card cites them).
DATA_NOTES: dict[str, str] = {
    "chr2_1-2000000.fa.gz": (
        "Human reference genome hg38 (GRCh38, UCSC naming), chromosome 2 bases 1-2,000,000 (1-based inclusive; "
        "0-based half-open chr2:0-2000000), one FASTA record `chr2_1_2000000`, UCSC soft-masked (lower case = "
        "RepeatMasker/TRF repeats, 36.3 %; genodiff's reader case-folds it), its first 10,000 bases N "
        "(the telomere gap: context, never scored). File `hg38_chr2_slice/chr2_1-2000000.fa.gz` of the "
        "project's shared data folder, documented in its `data/README.md`, section 4: copied from GitHub "
        "`bfairkun/my_utils`, `tests/data/chr2_1-2333275.fa.gz` (UCSC hg38 chr2:1-2,333,275; commit "
        "`146e0979b5df6ca470fb8a27575aedcb3fdbc433`; repository licence BSD-3-Clause), re-wrapped from 50 to 60 "
        "bp lines with the sequence unchanged; that README states \"The genome sequence itself is public "
        "(UCSC/GRC)\". UCSC's conditions of use (https://genome.ucsc.edu/conditions.html) state that the "
        "sequence and annotation data displayed in the Genome Browser are freely available for any use, asking "
        "users to credit the data contributor -- here the Genome Reference Consortium (GRCh38; NCBI accession "
        "GCA_000001405.15, which UCSC calls hg38) -- and to check its Credits page for restrictions on a genome's "
        "sequence. The rest of the source file (chr2:2,000,001-2,333,275) is not in the slice and was never "
        "read by genodiff: it is withheld for evaluation."),
}

CARD_TEMPLATE = """# {name}

{summary}

| | |
| --- | --- |
| weights | `{weights_name}`, {weights_bytes:,} bytes, sha256 `{sha256}` |
| provenance digest | `{digest}` (what `genodiff sample` / `score` write into their FASTA, TSV and JSON) |
| parameters | {parameters:,} |
| backbone | {model_line} |
| objective | {objective_line} |
| vocabulary | `{vocab}` |
| load it | `genodiff sample checkpoint={checkpoint}`{default_note}; Python: `load_model("{checkpoint}")` |

## Data and licence

{data_note}

Splits (0-based half-open, recomputed from the FASTA with the training code's split rule):

{splits}

## Training

Command (from the run's Hydra overrides{command_source}):

```
{command}
```

| | |
| --- | --- |
{training_rows}

Training configuration (the run's resolved Hydra config, abridged):

```yaml
{config_yaml}```

## Evaluation: held-out bits per base

{evaluation}

## Intended use

A small, fast DNA model for trying genodiff without training anything: demonstrations, tutorials, tests and
smoke runs of `genodiff sample`, `genodiff score` and `genodiff serve` on a CPU, and a reference point for
models trained with more compute. It is the model those jobs use when no `checkpoint=` is given.

## Limits

{limits}

{further}"""

LIMITS = [
    "Tiny: {parameters:,} parameters trained on {train_bp} bp of one region of one chromosome. It has seen "
    "no other part of the genome and will not represent other regions, other chromosomes or other species.",
    "Held-out numbers come from {eval_where}, next to the training region of the same chromosome: they say "
    "little about the genome at large.",
    "Bits per base of a diffusion model are upper bounds (NELBO estimates with a standard error), not exact "
    "likelihoods; compare them with the Markov rows of the same table.",
    "Trained on windows of {window} bp; longer sequences are generated window by window "
    "(`block_length`/`stride`), scored whole or in `chunk`s without cross-chunk context.",
    "Soft-masking (repeats) was case-folded away and N bases are context only: the model never generates N "
    "and knows nothing of lower case.",
    "Not validated for any biological or clinical use: variant scores (`genodiff score variants`) and "
    "generated sequences have not been benchmarked against experimental data.",
]


# ------------------------------------------------------------------------------------------- listing
def _run_dir_of(export: Path) -> Path | None:
    """The training run folder of an export folder named ``export`` (else None)."""
    return export.parent if export.name == "export" else None


def _load_yaml_config(path: Path) -> dict[str, Any]:
    try:
        return to_plain(OmegaConf.load(path))
    except Exception as exc:  # omegaconf/yaml errors, unresolvable interpolations
        raise InputError(f"{path}: cannot read the training config ({str(exc).splitlines()[0]})") from None


def training_run_facts(export: Path, config: str | os.PathLike | None = None) -> dict[str, Any]:
    """What the training run recorded about ``export``: ``config`` (resolved dict or None), ``config_path``,
    ``overrides`` (list or None), ``summary`` (the run's summary.json or None).

    ``config``: the run's ``.hydra/config.yaml`` (default: ``<run folder>/.hydra/config.yaml`` when the export is
    ``<run folder>/export``; runs with ``output_dir=`` keep it in Hydra's own run folder instead)."""
    run_dir = _run_dir_of(export)
    config_path = Path(config) if config else (run_dir / ".hydra" / "config.yaml" if run_dir else None)
    if config and not config_path.is_file():
        raise InputError(f"config: {config_path} does not exist")
    facts: dict[str, Any] = {"config": None, "config_path": None, "overrides": None, "summary": None}
    if config_path is not None and config_path.is_file():
        facts["config"], facts["config_path"] = _load_yaml_config(config_path), config_path
        overrides = config_path.parent / "overrides.yaml"
        if overrides.is_file():
            facts["overrides"] = [str(o) for o in (yaml.safe_load(overrides.read_text()) or [])]
    if run_dir is not None and (run_dir / "summary.json").is_file():
        facts["summary"] = read_json(run_dir / "summary.json")
    return facts


def _tokens(spec: dict, config: dict | None) -> int | None:
    training = spec.get("training") or {}
    if training.get("tokens") is not None:
        return int(training["tokens"])
    if config is None or training.get("global_step") is None:
        return None
    window = (config.get("data") or {}).get("window")
    batch = config.get("global_batch_size")
    if window is None or batch is None:
        return None
    return int(training["global_step"]) * int(batch) * int(window)


def _model_line(model: dict) -> str:
    items = [f"{k}={json.dumps(v)}" for k, v in model.items() if k != "name" and isinstance(v, (int, float, bool, str))]
    return f"{model.get('name', '?')} ({', '.join(items)})" if items else str(model.get("name", "?"))


def _objective_line(objective: dict) -> str:
    schedule = (objective.get("schedule") or {}).get("name") if isinstance(objective.get("schedule"), dict) else None
    parts = [f"{schedule} schedule"] if schedule else []
    if "time_conditioning" in objective:
        parts.append(f"time conditioning {'on' if objective['time_conditioning'] else 'off'}")
    return f"{objective.get('name', '?')}" + (f" ({', '.join(parts)})" if parts else "")


def _card_head(card: Path | None, lines: int) -> list[str]:
    if card is None or lines <= 0:
        return []
    text = [line.rstrip() for line in card.read_text(encoding="utf-8").splitlines() if line.strip()]
    return text[:lines]


def _parameters_or_none(spec: dict) -> int | None:
    """:func:`parameter_count`, or None for a backbone this genodiff cannot build (a newer export)."""
    try:
        return parameter_count(spec)
    except (ValueError, TypeError):
        return None


def export_facts(folder: Path, kind: str = "local", name: str | None = None, card_lines: int = 3) -> dict[str, Any]:
    """One listing row for the export ``folder``: name, kind (``bundled`` | ``local``), path, model, objective,
    parameters, weights bytes and digest, training steps and tokens (None when not recorded), card path and
    its first ``card_lines`` non-empty lines."""
    spec = read_spec(folder)
    weights = folder / WEIGHTS_NAME
    card = folder / CARD_NAME if (folder / CARD_NAME).is_file() else None
    if card is None and _run_dir_of(folder) is not None and (_run_dir_of(folder) / CARD_NAME).is_file():
        card = _run_dir_of(folder) / CARD_NAME
    config = None
    if kind == "local":
        try:
            config = training_run_facts(folder)["config"]
        except InputError:  # an unreadable run config only costs the token count
            config = None
    training = spec.get("training") or {}
    return {
        "name": name or str(folder), "kind": kind, "default": kind == "bundled" and name == DEFAULT_MODEL,
        "path": str(folder), "model": spec["model"], "objective": spec["objective"],
        "parameters": _parameters_or_none(spec),
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
        "digest": weights_digest(weights) if weights.is_file() else None,
        "steps": training.get("global_step"), "tokens": _tokens(spec, config),
        "card": None if card is None else str(card), "card_head": _card_head(card, card_lines),
    }


def find_exports(search: str | os.PathLike | None) -> list[Path]:
    """Export folders (``genodiff.json`` + ``model.safetensors``, format checked) under ``search``, sorted;
    hidden folders (temporary exports) are skipped. A missing ``search`` folder gives []."""
    if not search:
        return []
    root = Path(str(search)).expanduser()
    if not root.is_dir():
        return []
    found = []
    for config in root.rglob(CONFIG_NAME):
        folder = config.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue
        if not (folder / WEIGHTS_NAME).is_file():
            continue
        try:
            read_spec(folder)
        except InputError:
            continue
        found.append(folder)
    return sorted(found)


def list_models(search: str | os.PathLike | None = "outputs", card_lines: int = 3) -> dict[str, Any]:
    """``{"bundled": [rows], "local": [rows], "bundled_dir": ..., "search": ...}`` (rows: :func:`export_facts`)."""
    bundled = [export_facts(m.path, "bundled", m.name, card_lines) for m in bundled_models()]
    local = [export_facts(folder, "local", None, card_lines) for folder in find_exports(search)]
    return {"bundled_dir": str(bundled_models_dir()), "bundled": bundled, "search": None if not search else str(search),
            "local": local}


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "?"
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.1f} kB"


def _row_lines(row: dict) -> list[str]:
    title = row["name"] + ("  [default: used when no checkpoint= is given]" if row["default"] else "")
    steps = "?" if row["steps"] is None else f"{int(row['steps']):,}"
    tokens = "not recorded" if row["tokens"] is None else f"{int(row['tokens']):,}"
    lines = [f"  {title}", f"    path        {row['path']}",
             f"    model       {_model_line(row['model'])}, "
             + ("? parameters" if row["parameters"] is None else f"{row['parameters']:,} parameters"),
             f"    objective   {_objective_line(row['objective'])}",
             f"    training    {steps} steps, {tokens} tokens",
             f"    weights     {row['digest'] or 'missing'}, {_size(row['weights_bytes'])}"]
    if row["card"] is None:
        lines.append("    card        (none)")
    else:
        head = row["card_head"] or ["(empty)"]
        lines.append(f"    card        {head[0]}")
        lines += [f"                {line}" for line in head[1:]]
    return lines


def format_listing(listing: dict[str, Any]) -> str:
    lines = [f"bundled models ({listing['bundled_dir']}):"]
    lines += [line for row in listing["bundled"] for line in _row_lines(row)] or ["  (none)"]
    if listing["search"] is not None:
        lines += ["", f"local exports under {listing['search']}:"]
        lines += [line for row in listing["local"] for line in _row_lines(row)] or ["  (none)"]
    lines += ["", "genodiff models show <name|path> prints a model card; "
                  "checkpoint=<name|path> uses a model in sample / score."]
    return "\n".join(lines)


def show_card(target: str | None) -> str:
    """The ``MODEL_CARD.md`` of a bundled model (name or ``bundled:<name>``; None: the default one) or of an
    export / run folder; without a card, its listing facts and a note saying so."""
    if target and not str(target).startswith(BUNDLED_PREFIX) and not Path(str(target)).expanduser().exists() \
            and str(target) not in {m.name for m in bundled_models()}:
        known = ", ".join(m.name for m in bundled_models()) or "none"
        raise InputError(f"target: '{target}' is neither a bundled model (bundled: {known}) nor an export or run "
                         "folder")
    folder = resolve_export(target)
    for card in (folder / CARD_NAME, *(([_run_dir_of(folder) / CARD_NAME]) if _run_dir_of(folder) else [])):
        if card.is_file():
            return card.read_text(encoding="utf-8")
    bundled = {m.path.resolve(): m.name for m in bundled_models()}
    name = bundled.get(folder.resolve())
    row = export_facts(folder, "bundled" if name else "local", name, 0)
    return "\n".join([f"{folder}: no {CARD_NAME}", *_row_lines(row)[1:]]) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    action = str(cfg.get("action") or "list")
    if action == "show":
        text = show_card(cfg.get("target"))
        print(text, end="" if text.endswith("\n") else "\n")
        return {"action": "show", "card": text}
    if action != "list":
        raise InputError(f"action: '{action}' is not one of list, show")
    if cfg.get("target"):
        raise InputError("target: only for 'genodiff models show <name|path>'")
    card_lines = int(cfg.get("card_lines", 3))
    if card_lines < 0:
        raise InputError(f"card_lines: must be >= 0, got {card_lines}")
    listing = list_models(cfg.get("search"), card_lines)
    print(json.dumps(listing, indent=2) if cfg.get("json") else format_listing(listing))
    return listing


# ------------------------------------------------------------------------------------------ bundling
def split_facts(data: dict[str, Any]) -> dict[str, list[tuple[str, int, int]]]:
    """``{split: [(contig, start, end), ...]}`` (0-based half-open) of a genome data config with ``fasta`` and
    tails or ``intervals``, by :func:`genodiff.training.datamodule.split_intervals` on the FASTA's contig lengths."""
    fasta = data.get("fasta")
    if not fasta:
        raise InputError("data.fasta: the training config names no FASTA (dataset manifests are not supported here)")
    if not Path(fasta).is_file():
        raise InputError(f"data.fasta: {fasta} does not exist (run from the folder the run was started in)")
    records = scan_fasta(fasta)
    known = {f.name for f in GenomeDataConfig.__dataclass_fields__.values()}
    cfg = GenomeDataConfig(**{k: v for k, v in data.items() if k in known})
    genome = SimpleNamespace(names=[r.name for r in records], contig_lengths=[r.length for r in records])
    bed = Path(data["intervals"]) if data.get("intervals") else None
    splits = split_intervals(cfg, genome, bed, {})
    return {split: [(iv.chrom, int(iv.start), int(iv.end)) for iv in ivs] for split, ivs in splits.items()}


def _overlap(a: list[tuple[str, int, int]], b: list[tuple[str, int, int]]) -> int:
    return sum(max(0, min(e1, e2) - max(s1, s2)) for c1, s1, e1 in a for c2, s2, e2 in b if c1 == c2)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b) or file_digest(a) == file_digest(b)
    except OSError:
        return False


def evaluation_facts(results_path: str | os.PathLike, weights: Path, train_data: dict[str, Any]) -> dict[str, Any]:
    """The evaluation of ``weights`` in a ``genodiff evaluate`` DNA ``results.json``: the model row (found by the
    weights digest of its checkpoint), the Markov rows, split, windows, draws and the evaluated intervals.

    Refused (:class:`InputError`) when no row evaluates these weights, or when the evaluated split overlaps the
    training split of ``train_data`` or comes from another FASTA (the numbers would not be held out)."""
    results_path = Path(results_path)
    if not results_path.is_file():
        raise InputError(f"evaluate: {results_path} does not exist")
    results = read_json(results_path)
    if not isinstance(results, dict) or "rows" not in results or "split" not in results:
        raise InputError(f"{results_path}: not a genodiff evaluate results.json (no 'rows' / 'split')")
    digest = weights_digest(weights)
    row = None
    for candidate in results["rows"]:
        checkpoint = candidate.get("checkpoint")
        if candidate.get("kind") == "model" and checkpoint and (Path(checkpoint) / WEIGHTS_NAME).is_file() \
                and weights_digest(Path(checkpoint) / WEIGHTS_NAME) == digest:
            row = candidate
    if row is None or row.get("bits_per_base") is None:
        evaluated = [r.get("checkpoint") for r in results["rows"] if r.get("kind") == "model"]
        raise InputError(f"{results_path}: no model row evaluates these weights ({digest}); evaluated: {evaluated} "
                         "(paths are read relative to the current folder)")
    eval_data = (results.get("config") or {}).get("data") or {}
    if not eval_data.get("fasta") or not _same_file(str(eval_data["fasta"]), str(train_data.get("fasta"))):
        raise InputError(f"{results_path}: evaluated on {eval_data.get('fasta')}, not on the training FASTA "
                         f"{train_data.get('fasta')}")
    split = str(results["split"])
    evaluated = split_facts(eval_data)[split]
    overlap = _overlap(evaluated, split_facts(train_data)["train"])
    if overlap:
        raise InputError(f"{results_path}: the evaluated '{split}' split overlaps the training split by {overlap:,} bp "
                         "(not held out)")
    markov = [r for r in results["rows"] if r.get("kind") == "markov" and r.get("bits_per_base") is not None]
    return {"path": str(results_path), "split": split, "intervals": evaluated, "windows": results.get("windows"),
            "window": results.get("window"), "num_samples": results.get("num_samples"),
            "estimator": row.get("estimator"), "model": row, "markov": markov, "best_markov": results.get("markov")}


def _intervals_text(intervals: list[tuple[str, int, int]]) -> str:
    if not intervals:
        return "none"
    return ", ".join(f"`{c}:{s:,}-{e:,}`" for c, s, e in intervals) + f" ({sum(e - s for _, s, e in intervals):,} bp)"


def _evaluation_text(evaluation: dict[str, Any] | None) -> str:
    if evaluation is None:
        return ("Not measured: no `genodiff evaluate` results were given when this model was bundled. "
                "This card makes no likelihood claim.")
    model = evaluation["model"]
    lines = [f"`genodiff evaluate` on the {evaluation['split']} split {_intervals_text(evaluation['intervals'])}, "
             f"none of it trained on: {evaluation['windows']} windows of {evaluation['window']} bp, "
             f"{evaluation['num_samples']} draws per window (estimator `{evaluation['estimator']}`); Markov chains "
             "fitted on the training split and scored on the same bases. Bits per base of the diffusion model are "
             "an upper bound (NELBO) ± one standard error; Markov rows are exact. Source: "
             f"`{Path(evaluation['path']).name}` of the evaluate run.", "",
             "| model | likelihood | bits/base | ± s.e. |", "| --- | --- | ---: | ---: |",
             f"| this model | {model.get('likelihood', 'upper bound')} | {model['bits_per_base']:.4f} | "
             f"{model.get('bits_per_base_stderr', float('nan')):.4f} |"]
    for row in evaluation["markov"]:
        lines.append(f"| {row['model']} | exact | {row['bits_per_base']:.4f} | |")
    if evaluation["markov"]:
        best = min(evaluation["markov"], key=lambda r: r["bits_per_base"])
        diff = model["bits_per_base"] - best["bits_per_base"]
        verdict = "below (better than)" if diff < 0 else "above (worse than)"
        lines += ["", f"The model's bound is {abs(diff):.4f} bits/base {verdict} the best Markov chain here "
                      f"({best['model']}, {best['bits_per_base']:.4f})."]
    return "\n".join(lines)


def _abridged_config(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "objective", "vocab", "data", "seed", "global_batch_size", "max_steps", "optim", "ema_decay",
            "trainer", "init")
    out = {k: config[k] for k in keys if k in config}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in ("cache_dir", "num_workers")}
    return out


def render_card(name: str, folder: Path, run_facts: dict[str, Any], splits: dict[str, list],
                evaluation: dict[str, Any] | None, data_note: str, command: str | None = None,
                facts: list[str] = ()) -> str:
    """The ``MODEL_CARD.md`` text of the bundled export ``folder`` (see the module docstring: facts only)."""
    spec = read_spec(folder)
    config = run_facts["config"]
    training = spec.get("training") or {}
    weights = folder / WEIGHTS_NAME
    parameters = parameter_count(spec)
    window = int(config["data"]["window"])
    train_bp = sum(e - s for _, s, e in splits["train"])
    tokens = _tokens(spec, config)
    if command is None:
        job = config.get("job") or training.get("job") or "pretrain"
        overrides = run_facts.get("overrides")
        command = f"genodiff {job} {' '.join(overrides)}" if overrides is not None else None
        source = f", `{run_facts['config_path'].parent / 'overrides.yaml'}`" if overrides is not None else ""
    else:
        source = ": given when bundling"
    if command is None:
        raise InputError(f"command: the run recorded no overrides.yaml next to {run_facts['config_path']}; "
                         "pass the training command")
    rows = [("optimizer steps", f"{int(training['global_step']):,}"),
            ("global batch", f"{int(config['global_batch_size'])} windows of {window} bp"),
            ("training tokens", f"{tokens:,} (steps x batch x window)"),
            ("seed", str(training.get("seed", config.get("seed")))),
            ("exported weights", f"EMA (decay {config.get('ema_decay')})" if training.get("ema") else "last step"),
            ("initialised from", str(training.get("init") or "scratch"))]
    summary = run_facts.get("summary") or {}
    if summary.get("seconds") is not None:
        rows.append(("wall-clock time of the fit", f"{float(summary['seconds']):,.0f} s (the run's summary.json)"))
    if summary.get("metrics"):
        val = {k: v for k, v in summary["metrics"].items() if k.startswith("val/")}
        if val:
            rows.append(("last validation metrics", ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))))
    eval_where = (f"the {evaluation['split']} split ({sum(e - s for _, s, e in evaluation['intervals']):,} bp)"
                  if evaluation else "the held-out split (when measured)")
    limit_values = {"parameters": parameters, "train_bp": f"{train_bp:,}", "window": window, "eval_where": eval_where}
    further = ""
    if facts:
        further = "## Further facts (supplied by the maintainer when bundling)\n\n" + \
            "\n".join(f"- {fact}" for fact in facts) + "\n"
    digest = weights_digest(weights)
    summary_line = (f"A small masked diffusion language model for DNA (objective `{spec['objective'].get('name')}`) "
                    f"with a `{spec['model'].get('name')}` backbone"
                    + (" (reverse-complement equivariant, Caduceus-PS)" if spec["model"].get("rcps") else "")
                    + f", trained with genodiff on the training split ({train_bp:,} bp) of the data below and "
                    "shipped inside the genodiff package.")
    return CARD_TEMPLATE.format(
        name=name, summary=summary_line, weights_name=WEIGHTS_NAME, weights_bytes=weights.stat().st_size,
        sha256=file_digest(weights, "sha256"), digest=digest, parameters=parameters,
        model_line=_model_line(spec["model"]), objective_line=_objective_line(spec["objective"]),
        vocab=spec["vocab"] if isinstance(spec["vocab"], str) else json.dumps(spec["vocab"]), checkpoint=BUNDLED_PREFIX + name,
        default_note=" (or no `checkpoint=` at all: the default model)" if name == DEFAULT_MODEL else "",
        data_note=data_note,
        splits="\n".join(f"- {split}: {_intervals_text(splits.get(split, []))}" for split in ("train", "valid", "test")),
        command_source=source, command=command,
        training_rows="\n".join(f"| {k} | {v} |" for k, v in rows),
        config_yaml=yaml.safe_dump(_abridged_config(config), sort_keys=False, default_flow_style=None),
        evaluation=_evaluation_text(evaluation),
        limits="\n".join("- " + item.format(**limit_values) for item in LIMITS), further=further)


def _check_same_run(spec: dict[str, Any], config: dict[str, Any], config_path: Path) -> None:
    """The config is the run that produced the export: same objective and seed, same model (unless initialised
    from a checkpoint, whose export spells out the whole backbone config)."""
    training = spec.get("training") or {}
    checks = [("objective", spec.get("objective"), config.get("objective")),
              ("seed", training.get("seed"), config.get("seed"))]
    if not training.get("init"):
        checks.append(("model", spec.get("model"), config.get("model")))
    for key, exported, configured in checks:
        if exported is not None and exported != configured:
            raise InputError(f"config: {config_path} is not the run of this export ({key} {configured} in the config, "
                             f"{exported} in {CONFIG_NAME})")


def bundle_export(source: str | os.PathLike, name: str = DEFAULT_MODEL, *, dest_root: str | os.PathLike | None = None,
                  config: str | os.PathLike | None = None, evaluate: str | os.PathLike | None = None,
                  command: str | None = None, data_note: str | None = None, facts: list[str] = (),
                  max_mb: float = 5.0) -> Path:
    """Copy the export (or run folder) ``source`` into ``dest_root/<name>/`` (default: the package's bundled
    models folder) with ``MODEL_CARD.md``; returns the installed folder. Everything is checked before anything is
    installed (a staging folder is renamed into place): the weights load with :func:`load_model` and keep their
    digest, are at most ``max_mb`` MB, the run's config is found, the data has a licence note
    (:data:`DATA_NOTES` or ``data_note``) and the evaluation (if given) is of these weights on held-out data."""
    if not name or "/" in name or name.startswith(".") or any(c.isspace() for c in name):
        raise InputError(f"name: '{name}' is not a valid folder name")
    export = resolve_export(source)
    weights = export / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError(f"{export}: no {WEIGHTS_NAME}")
    folders = [p.name for p in export.iterdir() if p.is_dir()]
    if folders:  # the package data globs ship resources/models/<name>/* only
        raise InputError(f"{export}: holds folders ({', '.join(sorted(folders))}); a bundled model is files only")
    files = [p for p in export.iterdir() if p.is_file() and p.name not in (CONFIG_NAME, CARD_NAME)]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    if size_mb > max_mb:
        raise InputError(f"{export}: {size_mb:.1f} MB of weights is more than max_mb={max_mb} for a bundled model")
    run_facts = training_run_facts(export, config)
    if run_facts["config"] is None:
        raise InputError(f"config: no .hydra/config.yaml found for {export} (a run with output_dir= keeps it in "
                         "Hydra's folder outputs/<job>/<time>/.hydra/); pass it")
    train_config = run_facts["config"]
    _check_same_run(read_spec(export), train_config, run_facts["config_path"])
    data = train_config.get("data") or {}
    note = data_note or DATA_NOTES.get(Path(str(data.get("fasta"))).name)
    if note is None:
        raise InputError(f"data_note: genodiff has no data and licence note for {data.get('fasta')}; pass one")
    splits = split_facts(data)
    evaluation = evaluation_facts(evaluate, weights, data) if evaluate else None
    source_digest = weights_digest(weights)
    load_model(export, "cpu")  # the source loads

    root = Path(dest_root) if dest_root is not None else bundled_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for file in files:  # model.safetensors (+ objective.safetensors for objectives with learned parameters)
            shutil.copy2(file, staging / file.name)
        spec = read_spec(export)
        training = dict(spec.get("training") or {})
        training.update(tokens=_tokens(spec, train_config), global_batch_size=int(train_config["global_batch_size"]),
                        window=int(data["window"]), data=Path(str(data["fasta"])).name)
        spec["training"] = training
        atomic_write_text(staging / CONFIG_NAME, json.dumps(spec, indent=2, default=str))
        loaded = load_model(staging, "cpu")
        if loaded.digest != source_digest:  # pragma: no cover - copy2 is byte-exact
            raise InputError(f"{staging / WEIGHTS_NAME}: digest changed while copying")
        card = render_card(name, staging, run_facts, splits, evaluation, note, command, list(facts))
        atomic_write_text(staging / CARD_NAME, card)
        install_folder(staging, root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root / name
