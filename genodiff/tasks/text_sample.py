"""``genodiff sample text``: generate text from an exported text model (MDLM / SEDD / D3PM / AR).

``run(cfg)`` reads the shared sampling keys ``checkpoint`` (run or export folder), ``num_samples``,
``length`` (tokens; null: the model's training ``seq_len``), ``sampler`` (a method name -- ``cached``,
``ancestral``, ``first_hitting``, ``sedd``, ``ar`` -- or a dict of :class:`SamplerConfig` fields), ``steps``,
``seed``, ``temperature``, ``top_p``, ``batch_size``, ``output_dir``, and the text keys under ``text``:

* ``text.output_format``: ``txt`` (samples separated by a line ``=====``) or ``jsonl`` (one record per sample:
  ``index``, ``text``, ``num_tokens``, ``entropy``);
* ``text.tokenizer``: null to use the tokenizer saved in the export (``export/tokenizer/``), else a spec;
* ``text.prefix`` (or the shared ``conditioning.prefix``): a prompt kept fixed at the start of every sample;
* ``text.block_length`` / ``text.stride`` (or the shared ``block_length`` / ``stride``): semi-autoregressive
  generation when ``length`` exceeds the block (default block: the training ``seq_len``; stride: half of it);
* ``text.stop_at_eos``: cut each sample's text at its first ``[EOS]`` after some text (default false);
* ``text.eval_model``: optional AR evaluator (a genodiff AR export, or a Hugging Face causal LM name) for the
  generative perplexity, always reported with the samples' entropy (``text.eval_context`` tokens per window).

The AR objective always samples left to right (method ``ar``); time-conditioned models cannot use the
cached sampler and fall back to ``ancestral`` (same law, more denoiser calls). Writes ``samples.txt`` or
``samples.jsonl`` (``<output_name>.<format>`` when the shared ``output_name`` is set) and ``summary.json``
(entropy, generative perplexity if asked, timing) to ``output_dir``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from genodiff.errors import InputError

__all__ = ["run", "load_export_tokenizer", "generate_text", "sample_entropy"]


def _get(cfg, key: str, default=None):
    value = OmegaConf.select(cfg, key, default=default) if isinstance(cfg, DictConfig) else cfg.get(key, default)
    return default if value is None else value


def load_export_tokenizer(export: str | Path, override=None):
    """The tokenizer of an export (``export/tokenizer/``), or ``override`` (any :func:`load_tokenizer` spec)."""
    from genodiff.data.text_tokenizers import load_tokenizer
    from genodiff.training.export import read_spec

    if override:
        return load_tokenizer(override)
    export = Path(export)
    if (export / "tokenizer").is_dir():
        return load_tokenizer(export / "tokenizer")
    spec = read_spec(export).get("training", {}).get("text", {}).get("tokenizer")
    if spec:
        return load_tokenizer(spec)
    raise InputError(f"text.tokenizer: {export} is not a text model export (no tokenizer/); set text.tokenizer")


def sample_entropy(ids) -> float:
    """Entropy (nats) of the empirical token distribution of one sample (MDLM / ReMDM's sample entropy)."""
    ids = torch.as_tensor(ids).reshape(-1)
    if ids.numel() == 0:
        return 0.0
    counts = torch.bincount(ids - ids.min()).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def _sampler_spec(cfg, objective) -> dict:
    from genodiff.diffusion.objectives import ARObjective

    spec = _get(cfg, "sampler", "cached")
    spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec
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


@torch.no_grad()
def generate_text(denoiser, objective, vocab, tokenizer, *, num_samples: int, length: int, block_length: int,
                  stride: int | None = None, sampler: dict | None = None, batch_size: int = 8, seed: int = 0,
                  prefix: str | None = None, add_bos: bool = True, device="cpu", stop_at_eos: bool = False):
    """Generate ``num_samples`` sequences of ``length`` tokens; returns (texts, token tensors, calls).

    Lengths above ``block_length`` use semi-autoregressive windows with ``stride`` new tokens each."""
    from genodiff.diffusion.sampling import Sampler

    s = Sampler(sampler or {}, vocab)
    prefix_ids = []
    if add_bos:
        prefix_ids.append(tokenizer.bos_id)
    if prefix:
        prefix_ids += tokenizer.encode(prefix)
    if len(prefix_ids) >= length:
        raise InputError(f"text.prefix: {len(prefix_ids)} tokens do not leave room in length={length}")
    prefix_t = torch.tensor(prefix_ids, dtype=torch.long, device=device) if prefix_ids else None
    texts, rows, calls = [], [], 0
    generator = torch.Generator(device=device).manual_seed(int(seed))
    done = 0
    while done < num_samples:
        b = min(batch_size, num_samples - done)
        if length <= block_length:
            known = torch.full((length,), vocab.mask_id, dtype=torch.long, device=device)
            if prefix_t is not None:
                known[: len(prefix_ids)] = prefix_t
            out = s.sample(denoiser, b, length, x_init=known.expand(b, length).clone(), generator=generator)
        else:
            out = s.generate(denoiser, b, length, block_length=block_length, stride=stride or max(1, block_length // 2),
                             prefix=prefix_t, generator=generator, device=device)
        calls += out.num_denoiser_calls
        for row in out.tokens.cpu():
            ids = row.tolist()
            if stop_at_eos:
                start = len(prefix_ids)
                if tokenizer.eos_id in ids[start + 1:]:
                    ids = ids[: ids.index(tokenizer.eos_id, start + 1)]
            rows.append(row)
            texts.append(tokenizer.decode(ids))
        done += b
    return texts, rows, calls


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def run(cfg: DictConfig) -> dict[str, Any]:
    from genodiff.tasks.evaluate import load_for_scoring, resolve_export
    from genodiff.tasks.train import output_dir

    if not _get(cfg, "checkpoint"):
        raise InputError("checkpoint: not set (a training run folder or its export/ folder)")
    export = resolve_export(_get(cfg, "checkpoint"))
    fmt = str(_get(cfg, "text.output_format", "txt"))
    if fmt not in ("txt", "jsonl"):
        raise InputError(f"text.output_format: '{fmt}' is not txt or jsonl")
    if _get(cfg, "num_threads"):
        torch.set_num_threads(int(_get(cfg, "num_threads")))
    device = str(_get(cfg, "device", "auto"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    denoiser, objective, vocab, spec = load_for_scoring(export, device)
    tokenizer = load_export_tokenizer(export, _get(cfg, "text.tokenizer"))
    if tokenizer.vocab_size > vocab.size:
        raise InputError(f"text.tokenizer: {tokenizer.vocab_size} tokens but the model has {vocab.size}")
    info = spec.get("training", {}).get("text", {})
    context = int(info.get("seq_len", 0) or 0) or None
    length = int(_get(cfg, "length", 0) or 0) or context
    if not length:
        raise InputError("length: not set and the export does not record the training seq_len")
    block = int(_get(cfg, "text.block_length", 0) or _get(cfg, "block_length", 0) or 0) or context or length
    stride = _get(cfg, "text.stride") or _get(cfg, "stride")
    sampler = _sampler_spec(cfg, objective)
    num_samples = int(_get(cfg, "num_samples", 8))
    started = time.time()
    texts, rows, calls = generate_text(
        denoiser, objective, vocab, tokenizer, num_samples=num_samples, length=length, block_length=block,
        stride=int(stride) if stride else None, sampler=sampler, batch_size=int(_get(cfg, "batch_size", 8)),
        seed=int(_get(cfg, "seed", 0)), prefix=_get(cfg, "text.prefix") or _get(cfg, "conditioning.prefix"),
        add_bos=bool(info.get("add_bos_eos", True)) and bool(_get(cfg, "text.add_bos", True)), device=device,
        stop_at_eos=bool(_get(cfg, "text.stop_at_eos", False)))
    seconds = time.time() - started
    entropies = [sample_entropy(r) for r in rows]
    summary: dict[str, Any] = {
        "checkpoint": str(export), "num_samples": num_samples, "length": length, "block_length": block,
        "sampler": sampler, "denoiser_calls": calls, "seconds": round(seconds, 2),
        "entropy_mean": sum(entropies) / len(entropies), "entropy_unit": "nats (empirical token distribution of a sample)",
    }
    eval_model = _get(cfg, "text.eval_model")
    if eval_model:
        from genodiff.tasks.text_evaluate import generative_perplexity

        summary["generative_perplexity"] = generative_perplexity(
            texts, str(eval_model), device=device, context=_get(cfg, "text.eval_context"),
            batch_size=int(_get(cfg, "batch_size", 8)))
    out = output_dir(cfg)
    if fmt == "jsonl":
        body = "".join(json.dumps({"index": i, "text": t, "num_tokens": int(len(r)), "entropy": e}) + "\n"
                       for i, (t, r, e) in enumerate(zip(texts, rows, entropies)))
    else:
        body = "".join(f"{t}\n=====\n" for t in texts)
    path = out / f"{_get(cfg, 'output_name', 'samples')}.{fmt}"
    _write_atomic(path, body)
    summary["output"] = str(path)
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    line = {k: summary[k] for k in ("output", "num_samples", "length", "entropy_mean", "seconds")}
    if "generative_perplexity" in summary:
        line["generative_perplexity"] = summary["generative_perplexity"]["perplexity"]
    print(json.dumps(line, indent=2))
    return summary
