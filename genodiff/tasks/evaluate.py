"""``genodiff evaluate``: held-out NELBO of one or more exported models, next to Markov baselines.

For every checkpoint: the NELBO of each test window with ``num_samples`` time (or masking) samples
(``genodiff.diffusion.likelihood.estimate_nelbo``), aggregated in float64 into nats/base with a standard
error, bits/base and a perplexity bound. Every report also fits order-k Markov chains (k in
``markov_orders``) on the training split and scores the same test bases, so a reader sees at once
whether the model beats classical statistics. Writes ``report.md``, ``results.json`` and ``results.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from genodiff.errors import InputError

LN2 = math.log(2.0)


def resolve_export(path: str | Path) -> Path:
    """An export folder, or a run folder containing ``export/``."""
    path = Path(str(path)).expanduser()
    for candidate in (path, path / "export"):
        if (candidate / "genodiff.json").is_file():
            return candidate
    raise InputError(f"checkpoints: {path} is not a genodiff export or run folder (no genodiff.json)")


def load_for_scoring(folder: str | Path, device: str | torch.device = "cpu"):
    """(denoiser callable, objective, vocab, spec) of an exported model, ready for likelihood estimation."""
    from genodiff.training.export import load_export
    from genodiff.training.module import build_objective, make_vocab

    exported = load_export(resolve_export(folder), map_location=device)
    vocab = make_vocab(exported.spec["vocab"])
    objective = build_objective(exported.spec["objective"], vocab)
    model = exported.model

    @torch.no_grad()
    def denoiser(x_t: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        return model(x_t, time=t)[..., : vocab.size]

    return denoiser, objective, vocab, exported.spec


def nelbo_on_batches(denoiser, objective, batches, num_samples: int, method: str, seed: int,
                     progress=None) -> dict[str, float]:
    """Aggregate per-sequence NELBO estimates over batches (float64): nats/token, its standard error, bits."""
    from genodiff.diffusion.likelihood import estimate_nelbo

    total = torch.zeros((), dtype=torch.float64)
    variance = torch.zeros((), dtype=torch.float64)
    tokens = torch.zeros((), dtype=torch.float64)
    sequences = 0
    for index, x0 in enumerate(batches):
        generator = torch.Generator(device=x0.device).manual_seed(seed * 1_000_003 + index)
        est = estimate_nelbo(objective, denoiser, x0, None, num_samples, method, generator=generator)
        total += est.nelbo.double().sum().cpu()
        variance += est.stderr.double().nan_to_num(0.0).pow(2).sum().cpu()
        tokens += est.num_tokens.double().sum().cpu()
        sequences += x0.shape[0]
        if progress is not None:
            progress(x0.shape[0])
    nats = float(total / tokens.clamp(min=1))
    stderr = float(variance.sqrt() / tokens.clamp(min=1))
    return {"nats_per_base": nats, "nats_per_base_stderr": stderr, "bits_per_base": nats / LN2,
            "bits_per_base_stderr": stderr / LN2, "perplexity_bound": math.exp(nats), "tokens": int(tokens),
            "sequences": sequences}


def markov_rows(datamodule, orders, alpha: float, max_train_bases: int, split: str) -> tuple[list[dict], dict]:
    """Markov chains fitted on (up to ``max_train_bases`` of) the training intervals, scored on ``split``."""
    from genodiff.analysis.markov import markov_baseline

    train, used = [], 0
    for iv in datamodule.intervals["train"]:
        take = min(iv.end - iv.start, max_train_bases - used)
        if take <= 0:
            break
        train.append(np.asarray(datamodule.genome.fetch(iv.chrom, iv.start, iv.start + take)))
        used += take
    result = markov_baseline(train, datamodule.split_sequences(split), orders=orders, alpha=alpha)
    rows = [{"model": f"Markov order {k}", "kind": "markov", "bits_per_base": bpb, "bits_per_base_stderr": 0.0,
             "nats_per_base": bpb * LN2, "perplexity_bound": 2 ** bpb}
            for k, bpb in result["bits_per_base"].items()]
    return rows, {"best_order": result["best_order"], "best_bits_per_base": result["best_bits_per_base"],
                  "train_bases": used}


def render_report(results: dict) -> str:
    lines = [f"# genodiff evaluate: {results['split']} split", "",
             f"Data: `{results['data']}`; {results['windows']} windows of {results['window']} bp; "
             f"{results['num_samples']} samples per sequence. Bits per base are upper bounds for diffusion models "
             "(NELBO), exact for AR models and Markov chains; ± is one standard error of the estimate.", "",
             "| model | estimator | bits/base | ± | perplexity bound |", "| --- | --- | ---: | ---: | ---: |"]
    for row in results["rows"]:
        bpb = row.get("bits_per_base")
        if bpb is None:
            lines.append(f"| {row['model']} | | n/a ({row.get('note', '')}) | | |")
            continue
        estimator = row.get("estimator", "exact")
        lines.append(f"| {row['model']} | {estimator} | {bpb:.4f} | {row.get('bits_per_base_stderr', 0.0):.4f} | "
                     f"{row['perplexity_bound']:.4f} |")
    best = results.get("markov")
    if best:
        lines += ["", f"Best Markov order: {best['best_order']} ({best['best_bits_per_base']:.4f} bits/base, "
                      f"fitted on {best['train_bases']:,} training bases)."]
    return "\n".join(lines) + "\n"


def _output_dir(cfg: DictConfig) -> Path:
    from genodiff.tasks.train import output_dir

    return output_dir(cfg)


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.get("data") is not None and cfg.data.get("kind") == "text":
        from genodiff.tasks.text_evaluate import run as text_run

        return text_run(cfg)
    from genodiff.generate.scoring import pick_method
    from genodiff.training.datamodule import GenomeDataConfig, GenomeDataModule

    checkpoints = list(cfg.get("checkpoints") or [])
    exports = [resolve_export(c) for c in checkpoints]  # validate all before any work
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if cfg.get("max_windows"):
        data_cfg["max_eval_windows"] = int(cfg.max_windows)
    datamodule = GenomeDataModule(GenomeDataConfig(**data_cfg), batch_size=int(cfg.batch_size))
    datamodule.setup()
    split = str(cfg.split)
    if split not in datamodule.datasets or len(datamodule.datasets[split]) == 0:
        raise InputError(f"split: '{split}' has no windows in data '{data_cfg.get('dataset') or data_cfg.get('fasta')}'")
    device = "cuda" if cfg.get("device", "auto") == "auto" and torch.cuda.is_available() else (
        "cpu" if cfg.get("device", "auto") == "auto" else str(cfg.device))
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader() if split == "valid" \
        else datamodule._eval_loader(split)
    started = time.time()
    rows: list[dict] = []
    for folder in exports:
        denoiser, objective, _vocab, spec = load_for_scoring(folder, device)
        name = f"{spec['model'].get('name')} / {spec['objective'].get('name')} ({folder})"
        if not getattr(objective, "is_likelihood", True):
            rows.append({"model": name, "kind": "model", "bits_per_base": None,
                         "note": "MLM has no likelihood bound"})
            continue
        method = pick_method(objective, str(cfg.method))  # auto: num_masked for MDLM without time conditioning
        batches = (batch["input_ids"].to(device) for batch in loader)
        stats = nelbo_on_batches(denoiser, objective, batches, int(cfg.num_samples), method, int(cfg.seed))
        from genodiff.diffusion.objectives import ARObjective

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
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["model", "kind", "bits_per_base", "bits_per_base_stderr",
                                                "nats_per_base", "perplexity_bound"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    (out / "results.csv").write_text(buffer.getvalue())
    report = render_report(results)
    (out / "report.md").write_text(report)
    print(report)
    return results
