"""``genodiff sample [dna|text]``: generate DNA or text with a trained model (``kind``, default ``dna``).

Both kinds read the shared sampling keys ``checkpoint`` (run or export folder), ``num_samples``, ``length``,
``sampler``, ``steps``, ``seed``, ``temperature``, ``top_p``, ``batch_size``, ``block_length`` / ``stride``
(semi-autoregressive windows past the model's context, :func:`genodiff.generate.conditioning.fill`),
``num_threads``, ``device``, ``output_dir`` and ``output_name``.

DNA (``kind=dna``): ``order`` (``dilated`` or ``random``: the reveal order of the ancestral / cached sampler,
:func:`~genodiff.diffusion.sampling.ancestral_sample`; first-hitting always reveals in a random order), prefix /
suffix / infilling conditioning (:mod:`genodiff.generate.conditioning`), and
guided design (:mod:`genodiff.generate.design`): ``condition.label`` (a class of a class-conditional model),
``guidance.scale`` (w >= 0; classifier-free guidance, or classifier guidance with ``guidance.classifier``, a
noise-aware classifier export; ``guidance.mode``: exact | first_order | auto). The label, w and the
classifier's digest go into every FASTA header (``label= guidance= scale= classifier=``) and ``samples.json``.
Outputs in the run folder (``output_dir`` or Hydra's run dir):

* ``<output_name>.fa`` -- FASTA, IDs without spaces (``sample_0``, ``<region or template>_0``), provenance
  after the first space (``model= checkpoint=sha256:... sampler= steps= order= seed= temperature= top_p= ...``),
  60 bases per line (``line_width``), indexable by pyfaidx / ``samtools faidx``;
* ``<output_name>.json`` -- the full resolved config, model provenance, per-record statistics (length,
  GC, generated bases, denoiser calls), timing and the GC-target acceptance rate;
* with conditioning: ``<output_name>.infill.bed`` (generated runs as 0-based half-open intervals on the
  output records) and ``<output_name>.infill.json`` (the same runs, plus genome coordinates for regions).

Text (``kind=text``, an exported text model: MDLM / SEDD / D3PM / AR; :mod:`genodiff.generate.text`):
``length`` is in tokens (null: the model's training ``seq_len``); ``sampler`` is a method name --
``cached``, ``ancestral``, ``first_hitting``, ``sedd``, ``ar`` -- or a dict of :class:`SamplerConfig` fields;
the text keys under ``text``:

* ``text.output_format``: ``txt`` (samples separated by a line ``=====``) or ``jsonl`` (one record per sample:
  ``index``, ``text``, ``num_tokens``, ``entropy``);
* ``text.tokenizer``: null to use the tokenizer saved in the export (``export/tokenizer/``), else a spec;
* ``text.prefix`` (or the shared ``conditioning.prefix``): a prompt kept fixed at the start of every sample;
* ``text.block_length`` / ``text.stride`` (or the shared ``block_length`` / ``stride``): semi-autoregressive
  generation when ``length`` exceeds the block (default block: the training ``seq_len``; stride: half of it);
* ``text.stop_at_eos``: cut each sample's text at its first ``[EOS]`` after some text (default false);
* ``text.eval_model``: optional AR evaluator (a genodiff AR export, or a Hugging Face causal LM name) for the
  generative perplexity, always reported with the samples' entropy (``text.eval_context`` tokens per window).

A model that returns NaN or +inf logits stops either kind with one error line naming the checkpoint, the
sampler and the step (:class:`~genodiff.errors.NonFiniteError`); nothing is written.

The AR objective always samples left to right (method ``ar``); time-conditioned models cannot use the
cached sampler and fall back to ``ancestral`` (same law, more denoiser calls). Writes ``samples.txt`` or
``samples.jsonl`` (``<output_name>.<format>`` when ``output_name`` is set) and ``summary.json``
(entropy, generative perplexity if asked, timing) to ``output_dir``.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from genodiff.config import CONFIG_PACKAGE, to_plain
from genodiff.data.files import atomic_write_text
from genodiff.data.genome.intervals import read_bed
from genodiff.data.genome.reference import Genome
from genodiff.data.progress import progress_bar
from genodiff.diffusion.objectives import ARObjective
from genodiff.diffusion.plaid import PlaidObjective
from genodiff.diffusion.sampling import ORDERS, Sampler
from genodiff.errors import InputError, NonFiniteError
from genodiff.generate import conditioning as C
from genodiff.generate.design import GuidanceConfig, guided_denoiser
from genodiff.generate.fasta import DNA_TEMPLATE_CHARS, format_description, read_fasta, sanitize_id, write_fasta
from genodiff.generate.text import (
    SAMPLE_FORMATS,
    format_samples,
    generate_text,
    generative_perplexity,
    load_export_tokenizer,
    sample_entropy,
)
from genodiff.interop.export import load_model, resolve_device, resolve_export
from genodiff.ops import configure_from
from genodiff.tasks.run_folder import output_dir

SAMPLERS = ("ancestral", "cached", "first_hitting")
_YAML_DEFAULTS = OmegaConf.create((resources.files(CONFIG_PACKAGE) / "sample.yaml").read_text())
#: configs/sample.yaml's reverse steps and reveal order (the app offers the CLI's defaults)
DEFAULT_STEPS, DEFAULT_ORDER = int(_YAML_DEFAULTS.steps), str(_YAML_DEFAULTS.order)


def _seq_arg(value, what: str) -> list[tuple[str, str]]:
    """A literal sequence, or a FASTA path (all records) -> [(name, sequence)]."""
    text = str(value).strip()
    path = Path(text).expanduser()
    if path.is_file():
        return read_fasta(path, what=what)
    compact = "".join(text.split())
    if not compact or not set(compact.upper()) <= DNA_TEMPLATE_CHARS:
        raise InputError(f"{what}: {text[:40]!r} is neither an existing FASTA file nor a DNA sequence")
    return [(what.split(".")[-1], compact.upper())]


def _unique_ids(templates: list) -> list:
    """Make template ids unique (``x``, ``x.2``, ``x.3``...) so FASTA IDs never collide."""
    seen: dict[str, int] = {}
    for t in templates:
        n = seen.get(t.id, 0) + 1
        seen[t.id] = n
        if n > 1:
            t.id = f"{t.id}.{n}"
    return templates


def build_templates(cfg: DictConfig) -> tuple[list, str]:
    """Templates from ``cfg.conditioning`` (see configs/sample.yaml) -> (templates, mode)."""
    templates, mode = _build_templates(cfg)
    return _unique_ids(templates), mode


def _build_templates(cfg: DictConfig) -> tuple[list, str]:
    cond = cfg.get("conditioning") or {}
    region, bed, template = cond.get("region"), cond.get("bed"), cond.get("template")
    prefix, suffix = cond.get("prefix"), cond.get("suffix")
    if (region or bed) and (template or prefix or suffix):
        raise InputError("conditioning: use either region/bed or template/prefix/suffix, not both")
    if region or bed:
        if not cond.get("fasta"):
            raise InputError("conditioning.fasta: required with conditioning.region / conditioning.bed")
        flank = int(cond.get("flank", 512))
        if flank < 0:
            raise InputError(f"conditioning.flank: must be >= 0, got {flank}")
        regions = []
        if region:
            for r in ([region] if isinstance(region, str) else list(region)):
                regions.append(C.parse_region(r))
        genome = Genome(cond.fasta)
        if bed:
            for iv in read_bed(bed, genome_lengths=genome.lengths, split_column=None):
                regions.append((iv.chrom, iv.start, iv.end))
        if not regions:
            raise InputError(f"conditioning.bed: {bed}: no regions")
        out = [C.region_template(genome, c, s, e, flank, name=sanitize_id(f"{c}_{s}_{e}")) for c, s, e in regions]
        return out, "region"
    if template:
        recs = _seq_arg(template, "conditioning.template")
        out = [C.template_from_string(sanitize_id(name), seq) for name, seq in recs]
        if not any(t.generate_mask.any() for t in out):
            raise InputError("conditioning.template: no N or ? positions to generate")
        return out, "template"
    pre = _seq_arg(prefix, "conditioning.prefix")[0][1] if prefix else ""
    suf = _seq_arg(suffix, "conditioning.suffix")[0][1] if suffix else ""
    stem = sanitize_id(str(cfg.get("id_prefix") or "sample"))
    if pre or suf:
        return [C.prefix_suffix_template(stem, int(cfg.length), pre, suf)], "prefix_suffix"
    return [C.blank_template(stem, int(cfg.length))], "unconditional"


def _validate(cfg: DictConfig) -> None:
    if str(cfg.sampler) not in SAMPLERS:
        raise InputError(f"sampler: '{cfg.sampler}' is not one of {', '.join(SAMPLERS)}")
    if str(cfg.get("order", DEFAULT_ORDER)) not in ORDERS:
        raise InputError(f"order: '{cfg.get('order')}' is not one of {', '.join(ORDERS)}")
    for key, lo in (("num_samples", 1), ("batch_size", 1), ("steps", 1), ("length", 1), ("line_width", 1)):
        if cfg.get(key) is None or int(cfg.get(key)) < lo:
            raise InputError(f"{key}: must be an integer >= {lo}, got {cfg.get(key)}")
    if not float(cfg.temperature) > 0:
        raise InputError(f"temperature: must be > 0, got {cfg.temperature}")
    if not 0 < float(cfg.top_p) <= 1:
        raise InputError(f"top_p: must be in (0, 1], got {cfg.top_p}")
    if cfg.get("block_length") is not None and int(cfg.block_length) < 1:
        raise InputError(f"block_length: must be >= 1 or null, got {cfg.block_length}")
    gc = cfg.get("gc") or {}
    if gc.get("target") is not None:
        if not 0 <= float(gc.target) <= 1:
            raise InputError(f"gc.target: must be a fraction in [0, 1], got {gc.target}")
        if float(gc.get("tolerance", 0.02)) < 0:
            raise InputError(f"gc.tolerance: must be >= 0, got {gc.tolerance}")


def run(cfg: DictConfig) -> dict[str, Any]:
    """The sample job: ``kind=dna`` (default) or ``kind=text`` (see the module docstring)."""
    configure_from(cfg.get("ops"))  # ops.scan_backend
    kind = str(cfg.get("kind", "dna"))
    if kind not in ("dna", "text"):
        raise InputError(f"kind: '{kind}' is not one of dna, text")
    return _run_text(cfg) if kind == "text" else _run_dna(cfg)


# ------------------------------------------------------------------------------------------ DNA
def _guidance_config(cfg: DictConfig) -> GuidanceConfig:
    """``condition.label`` and the ``guidance`` keys (configs/sample.yaml) as a checked :class:`GuidanceConfig`."""
    guidance = to_plain(cfg.get("guidance")) or {}
    label = (to_plain(cfg.get("condition")) or {}).get("label")
    known = {"scale", "classifier", "mode", "max_exact_candidates", "batch_size"}
    unknown = sorted(set(guidance) - known)
    if unknown:
        raise InputError(f"guidance: unknown key(s) {unknown} (known: {sorted(known)})")
    return GuidanceConfig(label=label, **guidance)


def _run_dna(cfg: DictConfig) -> dict[str, Any]:
    _validate(cfg)
    guidance_cfg = _guidance_config(cfg)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    templates, mode = build_templates(cfg)  # all inputs validated before the model loads
    model = load_model(cfg.checkpoint, cfg.get("device", "auto"))  # null: the bundled model
    plaid = isinstance(model.objective, PlaidObjective)  # Gaussian diffusion on embeddings: its own sampler
    if not model.is_diffusion and not plaid:
        raise InputError(f"checkpoint: {model.checkpoint} was trained with objective "
                         f"'{model.spec.get('objective', {}).get('name')}'; sample needs an MDLM model")
    if plaid and (guidance_cfg.label is not None or float(cfg.temperature) != 1.0 or float(cfg.top_p) != 1.0):
        raise InputError("objective=plaid: the Plaid sampler takes no label, temperature or top_p (leave them unset)")
    method = "plaid" if plaid else str(cfg.sampler)
    if method == "cached" and model.time_conditioning:
        raise InputError("sampler=cached needs a model without time conditioning; use sampler=ancestral")
    order = str(cfg.get("order", DEFAULT_ORDER)) if method in ("ancestral", "cached") else None
    sampler = None if plaid else Sampler(
        {"method": method, "num_steps": int(cfg.steps), "schedule": model.objective.config.schedule,
         "time_conditioning": model.time_conditioning, "temperature": float(cfg.temperature),
         "top_p": float(cfg.top_p), "order": order or "random"}, model.vocab)

    guided = guided_denoiser(model, guidance_cfg)  # label / guidance checked against the model's classes
    block_length, stride = cfg.get("block_length"), cfg.get("stride")

    def batch_calls(tpl, rows: int) -> float:
        """Expected denoiser calls to fill ``rows`` copies of ``tpl`` (the progress bar's unit)."""
        windows = C.masked_per_window(tpl.generate_mask, block_length, stride)
        if plaid:
            return float(len(windows) * model.objective.expected_sample_calls(int(cfg.steps)))
        return sum(sampler.expected_calls(masked, rows, width) for width, masked in windows)

    def counted(denoiser):
        def call(*args, **kwargs):
            logits = denoiser(*args, **kwargs)
            progress.update(1)
            if not progress.disable:  # a disabled bar counts nothing
                left = max(0.0, progress.total - progress.n) * (time.time() - started) / progress.n
                progress.set_description(f"sample, about {left:.0f} s left", refresh=False)  # the app shows it too
            return logits
        return call

    def window_fn(x_init, generator):
        if plaid:  # Gaussian reverse process, replacement for known bases (genodiff.diffusion.plaid)
            return model.objective.sample(counted(model.denoiser), x_init=x_init, generator=generator,
                                          num_steps=int(cfg.steps))
        return sampler.sample(counted(guided.denoiser), x_init=x_init, generator=generator)

    gc_cfg = cfg.get("gc") or {}
    gc_target = None if gc_cfg.get("target") is None else float(gc_cfg.target)
    tolerance = float(gc_cfg.get("tolerance", 0.02))
    max_draws = int(cfg.num_samples) * int(gc_cfg.get("max_draws_factor", 50))
    n_per = int(cfg.num_samples)
    batch_size = int(cfg.batch_size)
    generator = torch.Generator(device=model.device).manual_seed(int(cfg.seed))
    mask_id = model.vocab.mask_id
    planned = [batch_size if gc_target is not None else min(batch_size, n_per - done)
               for done in range(0, n_per, batch_size)]
    expected_calls = sum(batch_calls(tpl, b) for tpl in templates for b in planned)
    show = bool(cfg.get("progress", True))
    if show:  # the bar's time left is this estimate of calls times the measured time per call
        print(f"genodiff sample: {n_per * len(templates)} sequence(s), {method}"
              f"{'' if method == 'first_hitting' else f' T={int(cfg.steps)}'}{f' ({order} order)' if order else ''}"
              f": about {expected_calls:,.0f} "
              f"denoiser calls in {len(planned) * len(templates)} batch(es)"
              f"{'' if gc_target is None else ' before GC rejection'}", file=sys.stderr)
    progress = progress_bar(max(1, round(expected_calls)), "sample", show, unit="call")
    provenance = {"model": model.name, "checkpoint": model.digest, "sampler": method,
                  "steps": int(cfg.steps) if method != "first_hitting" else "exact",
                  **({"order": order} if order else {}), "seed": int(cfg.seed),
                  "temperature": float(cfg.temperature), "top_p": float(cfg.top_p), **guided.provenance}
    records, meta, infill_rows = [], [], []
    total_calls = 0
    drawn = accepted_total = 0
    started, cpu_started = time.time(), time.process_time()
    for tpl in templates:
        gen_mask = torch.as_tensor(tpl.generate_mask, device=model.device)
        base = torch.as_tensor(tpl.tokens, device=model.device)
        kept: list[tuple[torch.Tensor, float]] = []
        tpl_drawn = 0
        while len(kept) < n_per and tpl_drawn < max_draws:
            b = batch_size if gc_target is not None else min(batch_size, n_per - len(kept))
            if tpl_drawn >= n_per:  # GC rejection drew more batches than planned
                progress.total += round(batch_calls(tpl, b))
            x = base.expand(b, -1).clone()
            try:
                tokens, calls, _ = C.fill(window_fn, x, mask_id, block_length, stride, generator)
            except NonFiniteError as exc:
                progress.close()
                raise NonFiniteError(f"checkpoint {model.checkpoint}: {exc}; nothing was written") from None
            total_calls += calls
            tpl_drawn += b
            if not bool((tokens[:, ~gen_mask] == base[~gen_mask]).all()):  # pragma: no cover - sampler contract
                raise RuntimeError("a known base was changed during sampling")
            gc = C.gc_fraction(tokens, gen_mask)
            ok = C.gc_accept(gc, gc_target, tolerance)
            for row in torch.nonzero(ok).flatten().tolist():
                if len(kept) < n_per:
                    kept.append((tokens[row].cpu(), float(gc[row])))
            progress.set_postfix_str(f"{accepted_total + len(kept)}/{n_per * len(templates)} sequences")
        drawn += tpl_drawn
        accepted_total += len(kept)
        if len(kept) < n_per:
            print(f"genodiff sample: warning: template {tpl.id}: only {len(kept)} of {n_per} sequences met "
                  f"gc.target={gc_target}±{tolerance} after {tpl_drawn} draws")
        runs = tpl.infill_runs()
        for i, (row, gc) in enumerate(kept):
            rid = f"{tpl.id}_{i}"
            seq = C.decode(row)
            extra = {"length": len(seq), "gc": f"{gc:.4f}"}
            if mode == "region":
                o = tpl.origin
                extra["source"] = f"{o['chrom']}:{o['start']}-{o['end']}"
                extra["infilled"] = ",".join(f"{s}-{e}" for s, e in runs)
            elif mode in ("template", "prefix_suffix"):
                extra["infilled"] = ",".join(f"{s}-{e}" for s, e in runs)
            records.append((rid, format_description({**provenance, **extra}), seq))
            meta.append({"id": rid, "template": tpl.id, "length": len(seq), "gc_generated": gc,
                         "generated_bases": int(tpl.generate_mask.sum())})
            for s, e in runs:
                row_info = {"id": rid, "start": s, "end": e}
                if tpl.origin:
                    row_info.update(chrom=tpl.origin["chrom"], genome_start=tpl.origin["start"] + s,
                                    genome_end=tpl.origin["start"] + e)
                infill_rows.append(row_info)
    progress.total = progress.n  # the estimate was approximate: end the bar at 100 %
    progress.close()
    if not records:
        raise InputError(f"gc.target={gc_target}: no sequence within ±{tolerance} after {drawn} draws; "
                         "raise gc.tolerance or gc.max_draws_factor")
    seconds, cpu_seconds = time.time() - started, time.process_time() - cpu_started
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    name = str(cfg.get("output_name") or "samples")
    fasta_path = write_fasta(out / f"{name}.fa", records, int(cfg.get("line_width", 60)))
    if mode != "unconditional":
        bed = "".join(f"{r['id']}\t{r['start']}\t{r['end']}\tgenerated\n" for r in infill_rows)
        atomic_write_text(out / f"{name}.infill.bed", bed)
        atomic_write_text(out / f"{name}.infill.json", json.dumps(
            {"coordinates": "0-based half-open; start/end on the output record, genome_start/genome_end on "
                            "the source contig (regions only)", "runs": infill_rows}, indent=2))
    summary = {
        "fasta": str(fasta_path), "mode": mode, "num_records": len(records), "templates": len(templates),
        "model": {"name": model.name, "checkpoint": model.checkpoint, "digest": model.digest,
                  "spec": model.spec, "device": model.device},
        "sampler": {**provenance, "block_length": cfg.get("block_length"), "stride": cfg.get("stride")},
        "guidance": guided.summary() or None,
        "denoiser_calls": total_calls, "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
        "gc_target": None if gc_target is None else {
            "target": gc_target, "tolerance": tolerance, "drawn": drawn, "accepted": accepted_total,
            "acceptance_rate": accepted_total / max(drawn, 1),
            "note": "rejection sampling of whole sequences: outputs follow the model conditioned on the GC window"},
        "records": meta,
        "config": to_plain(cfg),
    }
    atomic_write_text(out / f"{name}.json", json.dumps(summary, indent=2, default=str))
    msg = f"wrote {len(records)} sequences to {fasta_path} ({total_calls} denoiser calls, {seconds:.1f} s)"
    if gc_target is not None:
        msg += f"; GC acceptance {accepted_total}/{drawn} = {accepted_total / max(drawn, 1):.3f}"
    print(msg)
    return summary


# ----------------------------------------------------------------------------------------- text
def _get(cfg, key: str, default=None):
    value = OmegaConf.select(cfg, key, default=default) if isinstance(cfg, DictConfig) else cfg.get(key, default)
    return default if value is None else value


def _text_sampler_spec(cfg, objective) -> dict:
    """The :class:`SamplerConfig` dict for a text model: ``ar`` for AR models, ``ancestral`` instead of
    ``cached`` for time-conditioned ones, the training schedule unless the config names one."""
    spec = _get(cfg, "sampler", "cached")
    spec = to_plain(spec)
    spec = {"method": spec} if isinstance(spec, str) else dict(spec or {})
    spec.pop("name", None)
    tc = bool(getattr(objective.config, "time_conditioning", False))
    if isinstance(objective, ARObjective):
        spec["method"] = "ar"
        spec["bos_id"] = objective.bos_id
    else:
        if spec.get("method") == "ar":
            raise InputError("sampler: method 'ar' needs a model trained with objective=ar")
        spec["time_conditioning"] = tc
        if tc and spec.get("method", "cached") == "cached":
            spec["method"] = "ancestral"
        schedule = getattr(objective.config, "schedule", None)
        if schedule is not None and "schedule" not in spec:
            spec["schedule"] = schedule if isinstance(schedule, (dict, str)) else vars(schedule)
    for key, name in (("steps", "num_steps"), ("temperature", "temperature"), ("top_p", "top_p")):
        value = _get(cfg, key)
        if value is not None:
            spec[name] = value
    return spec


def _run_text(cfg: DictConfig) -> dict[str, Any]:
    if _get(cfg, "condition.label") is not None or float(_get(cfg, "guidance.scale", 0) or 0) or \
            _get(cfg, "guidance.classifier"):
        raise InputError("condition.label / guidance: guided design is for DNA (kind=dna); text models have no "
                         "class labels")
    if not _get(cfg, "checkpoint"):
        raise InputError("checkpoint: not set (a training run folder or its export/ folder; "
                         "no text model is bundled)")
    export = resolve_export(_get(cfg, "checkpoint"))
    fmt = str(_get(cfg, "text.output_format", "txt"))
    if fmt not in SAMPLE_FORMATS:
        raise InputError(f"text.output_format: '{fmt}' is not txt or jsonl")
    if _get(cfg, "num_threads"):
        torch.set_num_threads(int(_get(cfg, "num_threads")))
    device = resolve_device(_get(cfg, "device", "auto"))
    model = load_model(export, device)
    objective, vocab = model.objective, model.vocab
    tokenizer = load_export_tokenizer(export, _get(cfg, "text.tokenizer"))
    if tokenizer.vocab_size > vocab.size:
        raise InputError(f"text.tokenizer: {tokenizer.vocab_size} tokens but the model has {vocab.size}")
    info = model.spec.get("training", {}).get("text", {})
    context = int(info.get("seq_len", 0) or 0) or None
    length = int(_get(cfg, "length", 0) or 0) or context
    if not length:
        raise InputError("length: not set and the export does not record the training seq_len")
    block = int(_get(cfg, "text.block_length", 0) or _get(cfg, "block_length", 0) or 0) or context or length
    stride = _get(cfg, "text.stride") or _get(cfg, "stride")
    if isinstance(objective, PlaidObjective):
        if float(_get(cfg, "temperature", 1.0)) != 1.0 or float(_get(cfg, "top_p", 1.0)) != 1.0:
            raise InputError("objective=plaid: the Plaid sampler takes no temperature or top_p (leave them unset)")
        sampler = {"method": "plaid", "num_steps": int(_get(cfg, "steps", 256))}
    else:
        sampler = _text_sampler_spec(cfg, objective)
    num_samples = int(_get(cfg, "num_samples", 8))
    started = time.time()
    try:
        texts, rows, calls = generate_text(
            model.denoiser, objective, vocab, tokenizer, num_samples=num_samples, length=length, block_length=block,
            stride=int(stride) if stride else None, sampler=sampler, batch_size=int(_get(cfg, "batch_size", 8)),
            seed=int(_get(cfg, "seed", 0)), prefix=_get(cfg, "text.prefix") or _get(cfg, "conditioning.prefix"),
            add_bos=bool(info.get("add_bos_eos", True)) and bool(_get(cfg, "text.add_bos", True)), device=device,
            stop_at_eos=bool(_get(cfg, "text.stop_at_eos", False)))
    except NonFiniteError as exc:
        raise NonFiniteError(f"checkpoint {export}: {exc}; nothing was written") from None
    seconds = time.time() - started
    entropies = [sample_entropy(r) for r in rows]
    summary: dict[str, Any] = {
        "checkpoint": str(export), "num_samples": num_samples, "length": length, "block_length": block,
        "sampler": sampler, "denoiser_calls": calls, "seconds": round(seconds, 2),
        "entropy_mean": sum(entropies) / len(entropies), "entropy_unit": "nats (empirical token distribution of a sample)",
    }
    eval_model = _get(cfg, "text.eval_model")
    if eval_model:
        summary["generative_perplexity"] = generative_perplexity(
            texts, str(eval_model), device=device, context=_get(cfg, "text.eval_context"),
            batch_size=int(_get(cfg, "batch_size", 8)))
    out = output_dir(cfg)
    path = out / f"{_get(cfg, 'output_name', 'samples')}.{fmt}"
    atomic_write_text(path, format_samples(texts, rows, entropies, fmt))
    summary["output"] = str(path)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    line = {k: summary[k] for k in ("output", "num_samples", "length", "entropy_mean", "seconds")}
    if "generative_perplexity" in summary:
        line["generative_perplexity"] = summary["generative_perplexity"]["perplexity"]
    print(json.dumps(line, indent=2))
    return summary
