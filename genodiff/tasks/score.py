"""``genodiff score``: likelihood scoring for biologists.

``mode=sequences`` (``input=<FASTA>``): per record, the MDLM NELBO (an upper bound on ``-log p(x)``, nats)
estimated with ``num_samples`` draws (:mod:`genodiff.generate.scoring`), its standard error, and bits per
base = NELBO / (scored bases * ln 2). Only A/C/G/T bases are scored; ``N`` is context. With ``chunk`` set,
longer records are cut into consecutive chunks of ``chunk`` = W bp (0-based half-open ``[i*W, (i+1)*W)``, the
last chunk shorter) scored independently and summed (a bound for the chunk-independent model, i.e. without
cross-chunk context); ``chunk=null`` (default) scores each record whole. Output: ``<output_name>.tsv`` (default
``scores.tsv``) + ``<output_name>.json``.

``mode=variants`` (``input=<VCF|TSV>``, ``genome=<FASTA>``): see :mod:`genodiff.generate.variants`.
SNVs, MNVs, insertions, deletions and complex replacements, one row per ALT allele; POS is 1-based.
``llr = NELBO(ref) - NELBO(alt)`` nats (> 0: the model prefers ALT) on equal-length windows centred on the
change, common random numbers for both alleles; both windows' genome intervals (0-based half-open) are
written. Output: ``variants.tsv`` (every record; failed ones with an ``error``),
``variants.errors.tsv`` (failed records only) and ``variants.json``. The run succeeds (exit 0) when at least
one record was scored; when none could be scored it fails with one error line.

The NELBO bounds ``-log p`` of the model as sampled for every noise schedule (:mod:`genodiff.diffusion.likelihood`).
A model whose NELBO is NaN or infinite stops the run with one error line naming the checkpoint, and writes
no output.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from genodiff.config import to_plain
from genodiff.data.files import atomic_write_text
from genodiff.data.genome.reference import Genome
from genodiff.data.progress import progress_bar
from genodiff.diffusion.plaid import PlaidObjective
from genodiff.errors import InputError, NonFiniteError
from genodiff.generate.conditioning import encode
from genodiff.generate.fasta import DNA_CHARS, read_fasta
from genodiff.generate.scoring import LN2, make_draws, nelbo_with_draws, pick_method
from genodiff.generate.variants import (
    ERROR_COLUMNS,
    TSV_COLUMNS,
    read_variants,
    score_variants,
    variant_row,
)
from genodiff.interop.export import load_model
from genodiff.ops import configure_from
from genodiff.tasks.run_folder import output_dir

SEQUENCE_COLUMNS = ["id", "length", "scored_bases", "nelbo_nats", "nelbo_stderr", "bits_per_base",
                    "bits_per_base_stderr", "num_samples", "method"]


def _tsv(rows: list[dict], columns: list[str], header_comment: str = "") -> str:
    buf = io.StringIO()
    if header_comment:
        for line in header_comment.splitlines():
            buf.write(f"# {line}\n")
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _check_scorable(model) -> None:
    """Plaid models (Gaussian diffusion on embeddings) have no masking draws to share: not scored here yet."""
    if isinstance(model.objective, PlaidObjective):
        raise InputError(f"checkpoint: {model.checkpoint} was trained with objective 'plaid', which genodiff score "
                         "does not support yet; genodiff evaluate estimates its NELBO")


def score_records(model, records: list[tuple[str, str]], num_samples: int, method: str, seed: int,
                  batch_size: int = 16, chunk: int | None = None, progress=None) -> list[dict]:
    """Score ``[(id, sequence)]`` -> one dict per record (see ``SEQUENCE_COLUMNS``).

    Chunks of equal length are batched together and share one set of draws (seeded by ``seed`` and the
    length), so identical inputs get identical scores regardless of batch composition.
    """
    method = pick_method(model.objective, method)
    chunks = []  # (record index, ids)
    for i, (_, seq) in enumerate(records):
        ids = encode(seq)
        W = int(chunk) if chunk else len(ids)
        for s in range(0, len(ids), W):
            chunks.append((i, ids[s:s + W]))
    by_len: dict[int, list] = {}
    for c in chunks:
        by_len.setdefault(len(c[1]), []).append(c)
    nelbo = np.zeros(len(records))
    var = np.zeros(len(records))
    scored = np.zeros(len(records), dtype=np.int64)
    for L, group in sorted(by_len.items()):
        draws = make_draws(int(num_samples), L, method, int(seed) * 1_000_003 + L)
        for b in range(0, len(group), batch_size):
            part = group[b:b + batch_size]
            x = torch.as_tensor(np.stack([ids for _, ids in part]), device=model.device)
            res = nelbo_with_draws(model.objective, model.denoiser, x, draws)
            for j, (i, _) in enumerate(part):
                nelbo[i] += float(res.nelbo[j])
                se = float(res.stderr[j])
                var[i] += 0.0 if math.isnan(se) else se * se
                scored[i] += int(res.num_tokens[j])
            if progress is not None:
                progress(len(part))
    rows = []
    for i, (rid, seq) in enumerate(records):
        n = int(scored[i])
        se = math.sqrt(var[i])
        rows.append({"id": rid, "length": len(seq), "scored_bases": n, "nelbo_nats": float(nelbo[i]),
                     "nelbo_stderr": se,
                     "bits_per_base": float(nelbo[i]) / n / LN2 if n else float("nan"),
                     "bits_per_base_stderr": se / n / LN2 if n else float("nan"),
                     "num_samples": int(num_samples), "method": method})
    return rows


@contextlib.contextmanager
def _naming(checkpoint):
    """Re-raise a :class:`NonFiniteError` with the checkpoint named (the CLI prints it as one line)."""
    try:
        yield
    except NonFiniteError as exc:
        raise NonFiniteError(f"checkpoint {checkpoint}: {exc}") from None


def _validate(cfg: DictConfig) -> None:
    for key in ("num_samples", "batch_size"):
        if cfg.get(key) is None or int(cfg.get(key)) < 1:
            raise InputError(f"{key}: must be an integer >= 1, got {cfg.get(key)}")
    if int(cfg.num_samples) < 2:
        raise InputError("num_samples: need >= 2 draws to report a standard error")
    if cfg.get("chunk") is not None and int(cfg.chunk) < 1:
        raise InputError(f"chunk: must be >= 1 or null, got {cfg.chunk}")
    if str(cfg.get("method", "auto")) not in ("auto", "num_masked", "antithetic"):
        raise InputError(f"method: '{cfg.method}' is not one of auto, num_masked, antithetic")
    if not cfg.get("input"):
        raise InputError("input: required (FASTA for mode=sequences, VCF or TSV for mode=variants)")


def run(cfg: DictConfig) -> dict[str, Any]:
    configure_from(cfg.get("ops"))  # ops.scan_backend
    mode = str(cfg.get("mode", "sequences"))
    if mode not in ("sequences", "variants"):
        raise InputError(f"mode: '{mode}' is not one of sequences, variants")
    _validate(cfg)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    return _run_sequences(cfg) if mode == "sequences" else _run_variants(cfg)


def _run_sequences(cfg: DictConfig) -> dict[str, Any]:
    records = read_fasta(cfg.input, allowed=DNA_CHARS, what="input")
    model = load_model(cfg.checkpoint, cfg.get("device", "auto"))  # null: the bundled model
    _check_scorable(model)
    started, cpu0 = time.time(), time.process_time()
    W = int(cfg.chunk) if cfg.get("chunk") else None
    n_chunks = sum(math.ceil(len(s) / W) if W else 1 for _, s in records)
    with progress_bar(n_chunks, "score", bool(cfg.get("progress", True))) as bar, _naming(model.checkpoint):
        rows = score_records(model, records, int(cfg.num_samples), str(cfg.get("method", "auto")), int(cfg.seed),
                             int(cfg.batch_size), W, progress=bar.update)
    total_nelbo = sum(r["nelbo_nats"] for r in rows)
    total_bases = sum(r["scored_bases"] for r in rows)
    total_se = math.sqrt(sum(r["nelbo_stderr"] ** 2 for r in rows))
    summary = {
        "mode": "sequences", "input": str(cfg.input), "records": len(rows),
        "model": {"name": model.name, "checkpoint": model.checkpoint, "digest": model.digest},
        "nats_per_base": total_nelbo / max(total_bases, 1), "nats_per_base_stderr": total_se / max(total_bases, 1),
        "bits_per_base": total_nelbo / max(total_bases, 1) / LN2,
        "bits_per_base_stderr": total_se / max(total_bases, 1) / LN2, "scored_bases": total_bases,
        "method": rows[0]["method"] if rows else None, "num_samples": int(cfg.num_samples),
        "seconds": round(time.time() - started, 3), "cpu_seconds": round(time.process_time() - cpu0, 3),
        "rows": rows, "config": to_plain(cfg),
    }
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    name = str(cfg.get("output_name") or "scores")
    comment = (f"genodiff score sequences: model={model.name} checkpoint={model.digest}\n"
               "nelbo_nats: upper bound on -log p(sequence) in nats (MDLM NELBO); stderr over num_samples draws\n"
               "bits_per_base = nelbo_nats / (scored_bases * ln 2); only A/C/G/T bases are scored")
    atomic_write_text(out / f"{name}.tsv", _tsv(rows, SEQUENCE_COLUMNS, comment))
    atomic_write_text(out / f"{name}.json", json.dumps(summary, indent=2, default=str))
    print(f"scored {len(rows)} sequences: {summary['bits_per_base']:.4f} ± {summary['bits_per_base_stderr']:.4f} "
          f"bits/base ({total_bases} bases) -> {out / (name + '.tsv')}")
    return summary


def _run_variants(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.get("genome"):
        raise InputError("genome: required for mode=variants (the reference FASTA the VCF/TSV refers to)")
    if cfg.get("window") is None or int(cfg.window) < 1:
        raise InputError("window: mode=variants needs a window length in bp (e.g. window=256)")
    variants, fmt = read_variants(cfg.input)
    genome = Genome(cfg.genome)
    model = load_model(cfg.checkpoint, cfg.get("device", "auto"))  # null: the bundled model
    _check_scorable(model)
    started, cpu0 = time.time(), time.process_time()
    with progress_bar(len(variants), "variants", bool(cfg.get("progress", True))) as bar, _naming(model.checkpoint):
        score_variants(model, variants, genome, int(cfg.window), int(cfg.num_samples), str(cfg.get("method", "auto")),
                       int(cfg.seed), int(cfg.batch_size), progress=bar.update)
        bar.update(max(bar.total - bar.n, 0))  # records with errors are done too
    rows = [variant_row(v) for v in variants]
    ok = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    name = str(cfg.get("output_name") or "variants")
    comment = (f"genodiff score variants: model={model.name} checkpoint={model.digest} window={int(cfg.window)}bp "
               f"num_samples={int(cfg.num_samples)} seed={int(cfg.seed)}\n"
               "pos: 1-based (VCF); allele: 1-based index in the ALT list; other coordinates 0-based half-open\n"
               "change: genome [change_start, change_end) replaced by inserted (REF/ALT with shared bases trimmed)\n"
               "ref_window_start/end: genome interval scored for REF; alt_window_start/end: genome interval spanned "
               "by the ALT window = genome[alt_window_start:change_start] + inserted + "
               "genome[change_end:alt_window_end] (as long as the REF window)\n"
               "llr = nelbo_ref - nelbo_alt (nats; NELBO = upper bound on -log p). llr > 0: model favours ALT; "
               "< 0: favours REF. Same random draws for both alleles.\n"
               "llr_stderr: standard error of the paired per-draw differences; z = llr / llr_stderr")
    atomic_write_text(out / f"{name}.tsv", _tsv(rows, TSV_COLUMNS, comment))
    errors_path = out / f"{name}.errors.tsv"
    atomic_write_text(errors_path, _tsv(bad, ERROR_COLUMNS))
    summary = {"mode": "variants", "input": str(cfg.input), "format": fmt, "records": len(rows), "scored": len(ok),
               "errors": len(bad), "model": {"name": model.name, "checkpoint": model.checkpoint,
                                             "digest": model.digest},
               "seconds": round(time.time() - started, 3), "cpu_seconds": round(time.process_time() - cpu0, 3),
               "rows": rows, "config": to_plain(cfg)}
    atomic_write_text(out / f"{name}.json", json.dumps(summary, indent=2, default=str))
    if not ok:
        first = bad[0]["error"] if bad else "no records"
        raise InputError(f"input: {cfg.input}: no variant could be scored ({len(bad)} errors; first: {first}); "
                         f"see {errors_path}")
    print(f"scored {len(ok)} of {len(rows)} variant alleles -> {out / (name + '.tsv')}"
          + (f"; {len(bad)} errors in {errors_path}" if bad else ""))
    return summary
