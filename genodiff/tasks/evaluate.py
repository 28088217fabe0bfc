"""``genodiff evaluate``: held-out NELBO of one or more exported models, on DNA or text (``data.kind``).

For every checkpoint: the NELBO of each test window (or text item) with ``num_samples`` time (or masking)
samples (:func:`genodiff.generate.scoring.nelbo_on_batches`), aggregated in float64 into nats per base
(token) with a standard error, bits and a perplexity bound (exact NLL for AR models). The NELBO is an upper
bound (in expectation) on ``-log p`` of the model as sampled -- the reverse process from all-[MASK] -- for
every noise schedule, ``alpha(1) > 0`` and ``alpha(0) < 1`` included (:mod:`genodiff.diffusion.likelihood`);
each row says ``likelihood: "upper bound"`` or ``"exact"``. ``num_samples`` must be >= 2 unless every
checkpoint is an AR model (the standard error needs two draws). A model whose NELBO is NaN or infinite stops
the run with one error line and writes nothing.

* DNA (the default): every report also fits order-k Markov chains (k in ``markov_orders``) on the training
  split and scores the same test bases, so a reader sees at once whether the model beats classical
  statistics. Writes ``report.md``, ``results.json`` and ``results.csv``.
* Text (``data.kind: text``, a ``text_*`` data config): ``checkpoints``, ``split``, ``num_samples``,
  ``method``, ``batch_size``, ``seed``; optional ``samples`` (a ``samples.jsonl``/``.txt`` of
  ``genodiff sample text``) with ``eval_model`` (and ``eval_context``) for the generative perplexity under
  an AR evaluator, always reported with the samples' entropy
  (:func:`genodiff.generate.text.generative_perplexity`). Writes ``results.json`` and ``report.md``.
* Text on several corpora (``sets=[...]``, zero-shot as in MDLM's table 3): one table of NELBO / perplexity bounds
  per model and set (:func:`text_sets`, :func:`render_sets_report`). A set is a corpus name of ``corpora`` (PTB,
  WikiText, LM1B, LAMBADA, AG News, PubMed, arXiv: Hugging Face datasets, their test splits), a local file, folder
  or glob (the whole text, ``split: all``), or a mapping of ``data`` keys (``{name, split, source, text_files,
  detokenizer, ...}``). With ``text_settings: model`` (default) each checkpoint reads every set with the
  tokenizer, window length and packing it was trained with (its export); every number is written next to the
  detokenizer, tokenizer, windows and token count it was computed with. Writes ``results.json``,
  ``results.csv`` and ``report.md``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from genodiff.analysis.markov import markov_baseline
from genodiff.config import is_text_config, to_plain
from genodiff.data.files import atomic_write_text
from genodiff.diffusion.objectives import ARObjective
from genodiff.errors import InputError, NonFiniteError
from genodiff.generate.scoring import LN2, nelbo_on_batches, pick_method
from genodiff.generate.text import generative_perplexity, read_samples
from genodiff.interop.export import load_model, read_spec, resolve_device, resolve_export
from genodiff.ops import configure_from
from genodiff.tasks.run_folder import output_dir
from genodiff.training.datamodule import GenomeDataConfig, GenomeDataModule
from genodiff.training.text_datamodule import TextDataModule

__all__ = ["run", "text_nelbo", "markov_rows", "render_report", "render_text_report", "text_sets",
           "render_sets_report"]


def _split_loader(datamodule, split: str):
    """The evaluation DataLoader of ``split`` (``test``, ``valid`` or ``train``) of a set-up DataModule."""
    if split == "test":
        return datamodule.test_dataloader()
    if split == "valid":
        return datamodule.val_dataloader()
    return datamodule._eval_loader(split)


def _check_num_samples(num_samples, exports: list[Path]) -> None:
    """``num_samples`` >= 1, and >= 2 unless every checkpoint is AR (exact: no estimator, no standard error)."""
    try:
        k = int(num_samples)
    except (TypeError, ValueError):
        raise InputError(f"num_samples: must be an integer >= 2, got {num_samples}") from None
    if k < 1:
        raise InputError(f"num_samples: must be an integer >= 2, got {num_samples}")
    estimated = [e for e in exports if (read_spec(e).get("objective") or {}).get("name") != "ar"]
    if k < 2 and estimated:
        raise InputError(f"num_samples: need >= 2 draws to report a standard error (got {k}; "
                         f"{estimated[0]} is estimated, not exact)")


def _nelbo(folder, denoiser, objective, batches, num_samples: int, method: str, seed: int) -> dict:
    """:func:`nelbo_on_batches`, with the checkpoint named in a non-finite error."""
    try:
        return nelbo_on_batches(denoiser, objective, batches, num_samples, method, seed)
    except NonFiniteError as exc:
        raise NonFiniteError(f"checkpoint {folder}: {exc}") from None


def _se(value, likelihood: str | None = None) -> str:
    """A standard error for a table: ``-`` for exact numbers, ``n/a`` when unavailable (NaN), never a
    misleading ``0.0000`` for an estimate without one."""
    if likelihood == "exact":
        return "-"
    return "n/a" if value is None or value != value else f"{value:.4f}"


def _write_results(out: Path, results: dict, report: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    atomic_write_text(out / "report.md", report)
    print(report)


def run(cfg: DictConfig) -> dict[str, Any]:
    """The evaluate job: text when ``cfg.data.kind`` is ``text``, else DNA (see the module docstring)."""
    configure_from(cfg.get("ops"))  # ops.scan_backend
    if cfg.get("sets"):  # several text corpora; the data config (if text) is the base of every set
        return _run_text_sets(cfg)
    return _run_text(cfg) if is_text_config(cfg) else _run_genome(cfg)


# ------------------------------------------------------------------------------------------ DNA
def markov_rows(datamodule, orders, alpha: float, max_train_bases: int, split: str) -> tuple[list[dict], dict]:
    """Markov chains fitted on (up to ``max_train_bases`` of) the training intervals, scored on ``split``."""
    train, used = [], 0
    for iv in datamodule.intervals["train"]:
        take = min(iv.end - iv.start, max_train_bases - used)
        if take <= 0:
            break
        train.append(np.asarray(datamodule.genome.fetch(iv.chrom, iv.start, iv.start + take)))
        used += take
    result = markov_baseline(train, datamodule.split_sequences(split), orders=orders, alpha=alpha)
    rows = [{"model": f"Markov order {k}", "kind": "markov", "bits_per_base": bpb, "bits_per_base_stderr": 0.0,
             "nats_per_base": bpb * LN2, "perplexity_bound": 2 ** bpb, "likelihood": "exact"}
            for k, bpb in result["bits_per_base"].items()]
    return rows, {"best_order": result["best_order"], "best_bits_per_base": result["best_bits_per_base"],
                  "train_bases": used}


def render_report(results: dict) -> str:
    lines = [f"# genodiff evaluate: {results['split']} split", "",
             f"Data: `{results['data']}`; {results['windows']} windows of {results['window']} bp; "
             f"{results['num_samples']} samples per sequence. Bits per base are upper bounds for diffusion models "
             "(NELBO: in expectation, on -log p of the model as sampled from all-[MASK], for every noise "
             "schedule), exact for AR models and Markov chains; ± is one standard error of the estimate.", "",
             "| model | estimator | likelihood | bits/base | ± | perplexity bound |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for row in results["rows"]:
        bpb = row.get("bits_per_base")
        if bpb is None:
            lines.append(f"| {row['model']} | | | n/a ({row.get('note', '')}) | | |")
            continue
        estimator = row.get("estimator", "exact")
        lines.append(f"| {row['model']} | {estimator} | {row.get('likelihood', 'exact')} | {bpb:.4f} | "
                     f"{_se(row.get('bits_per_base_stderr'), row.get('likelihood'))} | {row['perplexity_bound']:.4f} |")
    best = results.get("markov")
    if best:
        lines += ["", f"Best Markov order: {best['best_order']} ({best['best_bits_per_base']:.4f} bits/base, "
                      f"fitted on {best['train_bases']:,} training bases)."]
    return "\n".join(lines) + "\n"


def _run_genome(cfg: DictConfig) -> dict[str, Any]:
    checkpoints = list(cfg.get("checkpoints") or [])
    exports = [resolve_export(c) for c in checkpoints]  # validate all before any work
    _check_num_samples(cfg.num_samples, exports)
    data_cfg = to_plain(cfg.data)
    if cfg.get("max_windows"):
        data_cfg["max_eval_windows"] = int(cfg.max_windows)
    datamodule = GenomeDataModule(GenomeDataConfig(**data_cfg), batch_size=int(cfg.batch_size))
    datamodule.setup()
    split = str(cfg.split)
    if split not in datamodule.datasets or len(datamodule.datasets[split]) == 0:
        raise InputError(f"split: '{split}' has no windows in data '{data_cfg.get('dataset') or data_cfg.get('fasta')}'")
    device = resolve_device(cfg.get("device", "auto"))
    loader = _split_loader(datamodule, split)
    started = time.time()
    rows: list[dict] = []
    for folder in exports:
        model = load_model(folder, device)
        denoiser, objective, spec = model.denoiser, model.objective, model.spec
        name = f"{spec['model'].get('name')} / {spec['objective'].get('name')} ({folder})"
        if not getattr(objective, "is_likelihood", True):
            rows.append({"model": name, "kind": "model", "bits_per_base": None,
                         "note": "MLM has no likelihood bound"})
            continue
        method = pick_method(objective, str(cfg.method))  # auto: num_masked for MDLM without time conditioning
        batches = (batch["input_ids"].to(device) for batch in loader)
        stats = _nelbo(folder, denoiser, objective, batches, int(cfg.num_samples), method, int(cfg.seed))
        estimator = "exact" if isinstance(objective, ARObjective) else method
        rows.append({"model": name, "kind": "model", "checkpoint": str(folder), "estimator": estimator, **stats})
    markov = None
    if cfg.get("markov_orders"):
        markov_table, markov = markov_rows(datamodule, [int(k) for k in cfg.markov_orders], float(cfg.markov_alpha),
                                           int(cfg.markov_max_train_bases), split)
        rows += markov_table
    results = {
        "split": split, "data": data_cfg.get("dataset") or data_cfg.get("fasta"), "window": datamodule.config.window,
        "windows": len(datamodule.datasets[split]), "num_samples": int(cfg.num_samples), "method": str(cfg.method),
        "rows": rows, "markov": markov, "seconds": round(time.time() - started, 2),
        "config": to_plain(cfg),
    }
    out = output_dir(cfg)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["model", "kind", "bits_per_base", "bits_per_base_stderr",
                                                "nats_per_base", "perplexity_bound", "likelihood"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    _write_results(out, results, render_report(results))
    return results


# ----------------------------------------------------------------------------------------- text
def text_nelbo(export: str | Path, datamodule, split: str = "test", num_samples: int = 8, method: str = "auto",
               seed: int = 0, device: str = "cpu", model=None) -> dict[str, float]:
    """NELBO statistics of ``export`` on ``split`` of a set-up :class:`TextDataModule` (nats per token);
    ``model``: the already loaded :class:`~genodiff.interop.export.LoadedModel` of ``export``."""
    model = model if model is not None else load_model(export, device)
    method = pick_method(model.objective, method)
    batches = (b["input_ids"].to(device) for b in _split_loader(datamodule, split))
    stats = _nelbo(export, model.denoiser, model.objective, batches, int(num_samples), method, int(seed))
    return {"nats_per_token": stats["nats_per_base"], "nats_per_token_stderr": stats["nats_per_base_stderr"],
            "bits_per_token": stats["bits_per_base"], "perplexity_bound": stats["perplexity_bound"],
            "likelihood": stats["likelihood"], "tokens": stats["tokens"], "sequences": stats["sequences"],
            "method": method, "objective": model.spec["objective"].get("name"),
            "model": model.spec["model"].get("name")}


def render_text_report(rows: list[dict], generative: dict | None) -> str:
    lines = ["NELBO rows are upper bounds (in expectation) on -log p of the model as sampled, for every noise "
             "schedule; AR rows are exact.", "",
             "| model | objective | likelihood | nats/token | ± | bits/token | perplexity bound |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"] if rows else []
    for r in rows:
        lines.append(f"| {r['model']} ({r['checkpoint']}) | {r['objective']} | {r.get('likelihood', '')} | "
                     f"{r['nats_per_token']:.4f} | {_se(r['nats_per_token_stderr'], r.get('likelihood'))} | "
                     f"{r['bits_per_token']:.4f} | "
                     f"{r['perplexity_bound']:.2f} |")
    if generative:
        lines += ["", f"Generative perplexity ({generative['evaluator']}): {generative['perplexity']:.2f} over "
                      f"{generative['tokens']} tokens; sample entropy {generative['entropy_mean']:.3f} nats."]
    return "\n".join(lines) + "\n"


def _run_text(cfg: DictConfig) -> dict[str, Any]:
    started = time.time()
    device = resolve_device(cfg.get("device", "auto"))
    rows: list[dict] = []
    checkpoints = [resolve_export(c) for c in (cfg.get("checkpoints") or [])]
    if checkpoints:
        _check_num_samples(cfg.get("num_samples", 8), checkpoints)
        data_cfg = to_plain(cfg.data)
        if cfg.get("max_windows"):
            data_cfg["max_eval_items"] = int(cfg.max_windows)
        dm = TextDataModule(data_cfg, batch_size=int(cfg.get("batch_size", 8)))
        dm.setup()
        for export in checkpoints:
            stats = text_nelbo(export, dm, str(cfg.get("split", "test")), int(cfg.get("num_samples", 8)),
                               str(cfg.get("method", "auto")), int(cfg.get("seed", 0)), device)
            rows.append({"checkpoint": str(export), **stats})
    gen = None
    if cfg.get("samples"):
        texts = read_samples(cfg.samples)
        if not cfg.get("eval_model"):
            raise InputError("eval_model: set an AR evaluator (genodiff AR export or Hugging Face causal LM) "
                             "to score samples")
        gen = generative_perplexity(texts, str(cfg.eval_model), device=device, context=cfg.get("eval_context"),
                                    batch_size=int(cfg.get("batch_size", 8)))
    results = {"rows": rows, "generative": gen, "seconds": round(time.time() - started, 2)}
    _write_results(output_dir(cfg), results, render_text_report(rows, gen))
    return results


# ------------------------------------------------------------------------------------ text: several sets
SET_SPLITS = ("test", "valid", "train", "all")


def _glob_or_path(text: str) -> bool:
    return any(c in text for c in "*?[") or Path(text).expanduser().exists()


def text_sets(entries, corpora: dict | None = None, default_split: str = "test") -> list[dict]:
    """The evaluation sets of ``sets=[...]``: ``[{"name", "split", "data": {data overrides}}]``.

    An entry is a name of ``corpora`` (its mapping of data keys; split ``test`` unless it says otherwise), an
    existing file, folder or glob (``{source: local, text_files: [entry]}``, the whole text: split ``all``), or a
    mapping ``{name, split, **data keys}`` (split: ``default_split``). Names must be unique."""
    corpora = dict(corpora or {})
    out, seen = [], set()
    for i, entry in enumerate(list(entries or [])):
        if isinstance(entry, str) and entry in corpora:
            data = dict(corpora[entry] or {})
            split = str(data.pop("split", "test"))
            name = entry
        elif isinstance(entry, str):
            if not _glob_or_path(entry):
                raise InputError(f"sets[{i}]: '{entry}' is neither a corpus of `corpora` ({', '.join(corpora)}) nor "
                                 "an existing file, folder or glob")
            path = Path(entry)
            name, split = path.name.split(".")[0] or entry, "all"
            data = {"source": "local", "text_files": [entry]}
        elif isinstance(entry, dict):
            data = dict(entry)
            name = str(data.pop("name", None) or f"set{i + 1}")
            split = str(data.pop("split", default_split))
        else:
            raise InputError(f"sets[{i}]: expected a corpus name, a path or a mapping, got {entry!r}")
        if split not in SET_SPLITS:
            raise InputError(f"sets[{i}] ({name}): split '{split}' is not one of {', '.join(SET_SPLITS)}")
        if name in seen:
            raise InputError(f"sets[{i}]: the name '{name}' is used twice (give the mapping form a name)")
        seen.add(name)
        out.append({"name": name, "split": split, "data": data})
    return out


def _model_text(spec: dict, export: Path, data_cfg: dict, text_settings: str) -> dict:
    """The tokenizer / window keys a checkpoint reads text with: its own (``text_settings: model``; the export's
    ``tokenizer/`` and ``training.text``) or the job's ``data`` (``data``)."""
    if text_settings not in ("model", "data"):
        raise InputError(f"text_settings: must be model or data, got '{text_settings}'")
    if text_settings == "data":
        return {k: data_cfg[k] for k in ("tokenizer", "seq_len", "mode", "add_bos_eos") if k in data_cfg}
    info = (spec.get("training") or {}).get("text") or {}
    folder = export / "tokenizer"
    tokenizer = str(folder) if folder.is_dir() else info.get("tokenizer")
    if not tokenizer:
        raise InputError(f"checkpoints: {export} records no text tokenizer (not a text model?); "
                         "use text_settings=data with data.tokenizer")
    out = {"tokenizer": tokenizer}
    for key in ("seq_len", "mode", "add_bos_eos"):
        if key in info:
            out[key] = info[key]
    return out


def _set_datamodule(data_cfg: dict, text: dict, one_set: dict, batch_size: int, max_items) -> tuple:
    """(set-up TextDataModule, split to evaluate) for one set read with ``text`` (tokenizer, windows)."""
    cfg = {**data_cfg, **one_set["data"], **text}
    if max_items:
        cfg["max_eval_items"] = int(max_items)
    split = one_set["split"]
    if split == "all":  # the whole text: nothing held out, the train split capped like an evaluation split
        cfg.update(valid_fraction=0.0, test_fraction=0.0)
    dm = TextDataModule(cfg, batch_size=batch_size)
    dm.setup()
    if split != "all":
        return dm, split
    ds, cap = dm.datasets["train"], dm.config.max_eval_items
    if cap and len(ds) > cap:
        dm.datasets["train"] = ds.subset(np.linspace(0, len(ds) - 1, cap).round().astype(np.int64))
    return dm, "train"


def _describe_source(data: dict) -> str:
    source = data.get("source", "local")
    if source == "local":
        return "local: " + ", ".join(map(str, data.get("text_files") or []))
    if source == "hf":
        return f"hf: {data.get('hf_dataset')}" + (f" ({data['hf_config']})" if data.get("hf_config") else "")
    return str(source)


def _run_text_sets(cfg: DictConfig) -> dict[str, Any]:
    started = time.time()
    exports = [resolve_export(c) for c in (cfg.get("checkpoints") or [])]
    if not exports:
        raise InputError("checkpoints: evaluating text sets needs at least one checkpoint")
    _check_num_samples(cfg.get("num_samples", 8), exports)
    data_cfg = to_plain(cfg.data) if is_text_config(cfg) else {"kind": "text"}  # else TextDataConfig defaults
    sets = text_sets(to_plain(cfg.sets), to_plain(cfg.get("corpora")) or {}, str(cfg.get("split", "test")))
    device = resolve_device(cfg.get("device", "auto"))
    settings = str(cfg.get("text_settings", "model"))
    rows: list[dict] = []
    for export in exports:
        model = load_model(export, device)
        text = _model_text(model.spec, export, data_cfg, settings)
        for one in sets:
            dm, split = _set_datamodule(data_cfg, text, one, int(cfg.get("batch_size", 8)), cfg.get("max_windows"))
            stats = text_nelbo(export, dm, split, int(cfg.get("num_samples", 8)), str(cfg.get("method", "auto")),
                               int(cfg.get("seed", 0)), device, model=model)
            c = dm.config
            rows.append({"checkpoint": str(export), "set": one["name"], "split": one["split"],
                         "source": _describe_source({**data_cfg, **one["data"]}),
                         "detokenizer": c.detokenizer or "none",
                         "tokenizer": f"{dm.tokenizer.name} (V={dm.tokenizer.vocab_size})", "seq_len": c.seq_len,
                         "mode": c.mode, **stats})
    results = {"rows": rows, "sets": sets, "text_settings": settings, "num_samples": int(cfg.get("num_samples", 8)),
               "seconds": round(time.time() - started, 2), "config": to_plain(cfg)}
    out = output_dir(cfg)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["checkpoint", "model", "objective", "set", "split", "source",
                                                "detokenizer", "tokenizer", "seq_len", "mode", "sequences", "tokens",
                                                "nats_per_token", "nats_per_token_stderr", "bits_per_token",
                                                "perplexity_bound", "likelihood", "method"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    _write_results(out, results, render_sets_report(rows, results["num_samples"]))
    return results


def render_sets_report(rows: list[dict], num_samples: int) -> str:
    """Markdown: one row per (model, set) with the detokenizer, tokenizer, windows and token count of each
    number, then the perplexity bounds as a model x set table."""
    lines = ["# genodiff evaluate: text sets", "",
             f"NELBO per token ({num_samples} masking draws per window; ± one standard error) and the perplexity bound "
             "exp(NELBO/token): upper bounds (in expectation) on -log p of the model as sampled for diffusion models, "
             "exact for AR models. Numbers depend on the tokenizer, the window (tokens, packing) and the "
             "detokenizer, written next to each.", "",
             "| model | set | split | source | detokenizer | tokenizer | window | windows | tokens | nats/token | ± | "
             "bits/token | perplexity bound |",
             "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']}/{r['objective']} ({r['checkpoint']}) | {r['set']} | {r['split']} | "
                     f"{r['source']} | {r['detokenizer']} | {r['tokenizer']} | {r['seq_len']} {r['mode']} | "
                     f"{r['sequences']} | {r['tokens']} | {r['nats_per_token']:.4f} | "
                     f"{_se(r['nats_per_token_stderr'], r.get('likelihood'))} | {r['bits_per_token']:.4f} | "
                     f"{r['perplexity_bound']:.2f} |")
    names = list(dict.fromkeys(r["set"] for r in rows))
    models = list(dict.fromkeys(r["checkpoint"] for r in rows))
    cell = {(r["checkpoint"], r["set"]): r for r in rows}
    lines += ["", "Perplexity bounds, model x set:", "", "| model | " + " | ".join(names) + " |",
              "| --- |" + " ---: |" * len(names)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(f"{cell[(m, n)]['perplexity_bound']:.2f}" if (m, n) in cell else ""
                                              for n in names) + " |")
    return "\n".join(lines) + "\n"
