"""Text evaluation: held-out NELBO / perplexity bound, and generative perplexity with sample entropy.

* :func:`text_nelbo` -- nats/token (with standard error), bits/token and the perplexity bound
  ``exp(NELBO/token)`` of an exported model on a split of a text DataModule (exact NLL for AR models).
* :func:`generative_perplexity` -- texts are re-tokenized with the evaluator's own tokenizer and scored by
  an AR evaluator: a genodiff AR export (``objective=ar``, saved with its tokenizer) or any Hugging Face
  causal LM by name or folder (``gpt2-large`` as in MDLM; needs ``transformers``; offline and not cached ->
  one-line :class:`InputError`). Texts longer than the evaluator's context are scored window by window.
  Always reported together with the samples' entropy (low entropy = repetitive text with a deceptively low
  generative perplexity).
* :func:`run` -- ``genodiff evaluate`` for text data: ``checkpoints``, ``data`` (a ``text_*`` data config),
  ``split``, ``num_samples``, ``method``, ``batch_size``, ``seed``, ``output_dir``; optional ``samples`` (a
  ``samples.jsonl``/``.txt`` of ``genodiff sample text``) with ``eval_model`` for generative perplexity.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from genodiff.errors import InputError

LN2 = math.log(2.0)

__all__ = ["text_nelbo", "generative_perplexity", "read_samples", "mean_entropy", "run"]


def text_nelbo(export: str | Path, datamodule, split: str = "test", num_samples: int = 8, method: str = "auto",
               seed: int = 0, device: str = "cpu") -> dict[str, float]:
    """NELBO statistics of ``export`` on ``split`` of a set-up :class:`TextDataModule` (nats per token)."""
    from genodiff.generate.scoring import pick_method
    from genodiff.tasks.evaluate import load_for_scoring, nelbo_on_batches

    denoiser, objective, vocab, spec = load_for_scoring(export, device)
    loader = {"test": datamodule.test_dataloader, "valid": datamodule.val_dataloader}.get(split)
    if loader is None:
        loader = lambda: datamodule._eval_loader(split)  # noqa: E731
    method = pick_method(objective, method)
    batches = (b["input_ids"].to(device) for b in loader())
    stats = nelbo_on_batches(denoiser, objective, batches, int(num_samples), method, int(seed))
    out = {"nats_per_token": stats["nats_per_base"], "nats_per_token_stderr": stats["nats_per_base_stderr"],
           "bits_per_token": stats["bits_per_base"], "perplexity_bound": stats["perplexity_bound"],
           "tokens": stats["tokens"], "sequences": stats["sequences"], "method": method,
           "objective": spec["objective"].get("name"), "model": spec["model"].get("name")}
    return out


# ------------------------------------------------------------------------------------ evaluators
class _GenodiffAREvaluator:
    def __init__(self, export: Path, device: str):
        from genodiff.diffusion.objectives import ARObjective
        from genodiff.tasks.evaluate import load_for_scoring
        from genodiff.tasks.text_sample import load_export_tokenizer

        self.denoiser, self.objective, self.vocab, spec = load_for_scoring(export, device)
        if not isinstance(self.objective, ARObjective):
            raise InputError(f"eval_model: {export} was trained with objective={spec['objective'].get('name')}, "
                             "not ar; generative perplexity needs an AR evaluator")
        self.tokenizer = load_export_tokenizer(export)
        info = spec.get("training", {}).get("text", {})
        self.context = int(info.get("seq_len", 1024))
        self.add_bos = self.has_bos = bool(info.get("add_bos_eos", True))
        self.device = device
        self.name = str(export)

    def encode(self, text: str) -> list[int]:
        return ([self.tokenizer.bos_id] if self.add_bos else []) + self.tokenizer.encode(text)

    @torch.no_grad()
    def nll(self, windows: list[list[int]]) -> tuple[float, int]:
        """Summed NLL (nats) and count of the scored tokens (all but the first of each window)."""
        length = max(len(w) for w in windows)
        x = torch.full((len(windows), length), self.vocab.pad_id if self.vocab.pad_id is not None else 0,
                       dtype=torch.long, device=self.device)
        mask = torch.zeros_like(x, dtype=torch.bool)
        for i, w in enumerate(windows):
            x[i, : len(w)] = torch.tensor(w, dtype=torch.long)
            mask[i, 1: len(w)] = True
        out = self.objective.loss(x, mask, denoiser=self.denoiser)
        return float(out.nelbo_per_seq.double().sum()), int(out.num_tokens.sum())


class _HFCausalLMEvaluator:
    def __init__(self, name: str, device: str):
        from genodiff.data.text_tokenizers import hub_reachable

        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415
        except ModuleNotFoundError:
            raise InputError(f"eval_model '{name}': the 'transformers' package is not installed "
                             "(pip install transformers), or use a genodiff AR export") from None
        local = Path(name).expanduser().is_dir()
        offline = not local and not hub_reachable()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=offline or local)
            self.model = AutoModelForCausalLM.from_pretrained(name, local_files_only=offline or local).to(device).eval()
        except Exception as exc:
            if offline:
                raise InputError(f"eval_model '{name}': not in the local Hugging Face cache and the Hub is "
                                 "unreachable (offline); use a genodiff AR export or a local model folder") from None
            raise InputError(f"eval_model '{name}': {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        self.context = int(getattr(self.model.config, "n_positions", None)
                           or getattr(self.model.config, "max_position_embeddings", 1024))
        self.device, self.name = device, name

    @property
    def has_bos(self) -> bool:
        return self.tokenizer.bos_token_id is not None

    def encode(self, text: str) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def nll(self, windows: list[list[int]]) -> tuple[float, int]:
        length = max(len(w) for w in windows)
        x = torch.zeros((len(windows), length), dtype=torch.long)
        mask = torch.zeros_like(x, dtype=torch.bool)
        for i, w in enumerate(windows):
            x[i, : len(w)] = torch.tensor(w)
            mask[i, : len(w)] = True
        x, mask = x.to(self.device), mask.to(self.device)
        logits = self.model(input_ids=x, attention_mask=mask.long()).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, x[:, 1:, None]).squeeze(-1)
        keep = mask[:, 1:]
        return float(-(logp * keep).double().sum()), int(keep.sum())


def _evaluator(spec: str, device: str):
    from genodiff.tasks.evaluate import resolve_export

    path = Path(spec).expanduser()
    if path.is_dir() and ((path / "genodiff.json").is_file() or (path / "export" / "genodiff.json").is_file()):
        return _GenodiffAREvaluator(resolve_export(path), device)
    return _HFCausalLMEvaluator(spec, device)


def generative_perplexity(texts: Sequence[str], eval_model: str, device: str = "cpu", context: int | None = None,
                          batch_size: int = 8) -> dict[str, Any]:
    """exp(total NLL / total scored tokens) of ``texts`` under the AR evaluator, after re-tokenization.

    Each text is cut into windows of ``context`` tokens (default: the evaluator's); the first token of a
    window is context only. Returns perplexity, nats/token, tokens scored, the evaluator and the context."""
    if not texts:
        raise InputError("generative perplexity: no texts")
    ev = _evaluator(str(eval_model), device)
    ctx = int(context or ev.context)
    if ctx < 2:
        raise InputError("eval_context: must be at least 2")
    from genodiff.tasks.text_sample import sample_entropy

    windows: list[list[int]] = []
    entropies = []
    for text in texts:
        ids = ev.encode(text)
        entropies.append(sample_entropy(ids[1:] if ev.has_bos else ids))
        for start in range(0, max(1, len(ids) - 1), ctx - 1):  # windows overlap by one token
            w = ids[start: start + ctx]
            if len(w) >= 2:
                windows.append(w)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        nll, n = ev.nll(windows[i: i + batch_size])
        total += nll
        count += n
    if count == 0:
        raise InputError("generative perplexity: the texts hold fewer than two evaluator tokens")
    nats = total / count
    return {"perplexity": math.exp(nats), "nats_per_token": nats, "tokens": count, "evaluator": ev.name,
            "context": ctx, "entropy_mean": sum(entropies) / len(entropies),
            "entropy_unit": "nats, empirical distribution of a sample's evaluator tokens"}


def read_samples(path: str | Path) -> list[str]:
    """Texts of a ``samples.jsonl`` (field ``text``) or ``samples.txt`` (separated by ``=====`` lines)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"samples: file not found: {path}")
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    parts = path.read_text().split("\n=====\n")
    return [p for p in parts if p.strip()]


def mean_entropy(texts: Sequence[str], tokenizer) -> float:
    """Mean per-sample entropy (nats) of the texts' token distributions under ``tokenizer``."""
    from genodiff.tasks.text_sample import sample_entropy

    values = [sample_entropy(tokenizer.encode(t)) for t in texts if t]
    return sum(values) / max(1, len(values))


def run(cfg: DictConfig) -> dict[str, Any]:
    """Text evaluation job (see the module docstring); writes ``results.json`` and ``report.md``."""
    from genodiff.tasks.evaluate import resolve_export
    from genodiff.tasks.train import output_dir
    from genodiff.training.text_datamodule import TextDataModule

    started = time.time()
    device = str(cfg.get("device", "auto"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    rows: list[dict] = []
    checkpoints = [resolve_export(c) for c in (cfg.get("checkpoints") or [])]
    if checkpoints:
        data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
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
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    lines = ["| model | objective | nats/token | ± | bits/token | perplexity bound |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} ({r['checkpoint']}) | {r['objective']} | {r['nats_per_token']:.4f} | "
                     f"{r['nats_per_token_stderr']:.4f} | {r['bits_per_token']:.4f} | {r['perplexity_bound']:.2f} |")
    if gen:
        lines += ["", f"Generative perplexity ({gen['evaluator']}): {gen['perplexity']:.2f} over {gen['tokens']} tokens; "
                      f"sample entropy {gen['entropy_mean']:.3f} nats."]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)
    return results
