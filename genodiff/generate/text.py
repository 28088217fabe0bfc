"""Text generation and its quality measures, beside DNA generation (:mod:`.conditioning`).

* :func:`generate_text` -- samples of any length from a text model: one window, or semi-autoregressive
  windows past ``block_length`` with the same :func:`genodiff.generate.conditioning.fill` as DNA; a prompt
  (``[BOS]`` and/or a text prefix) is known context kept at the start of every sample.
* :func:`load_export_tokenizer` -- the tokenizer saved with an export (``export/tokenizer/``).
* :func:`sample_entropy` / :func:`mean_entropy` -- entropy of a sample's empirical token distribution
  (MDLM / ReMDM's sample entropy; low entropy = repetitive text).
* :func:`format_samples` / :func:`read_samples` -- ``samples.txt`` (separated by ``=====`` lines) and
  ``samples.jsonl`` (``index``, ``text``, ``num_tokens``, ``entropy``), as ``genodiff sample text`` writes them.
* :func:`generative_perplexity` -- texts are re-tokenized with the evaluator's own tokenizer and scored by
  an AR evaluator: a genodiff AR export (``objective=ar``, saved with its tokenizer) or any Hugging Face
  causal LM by name or folder (``gpt2-large`` as in MDLM; needs ``transformers``; offline and not cached ->
  one-line :class:`InputError`). Texts longer than the evaluator's context are scored window by window.
  Always reported together with the samples' entropy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from genodiff.data.hub import hub_reachable
from genodiff.data.text.tokenizers import load_tokenizer
from genodiff.diffusion.objectives import ARObjective
from genodiff.diffusion.plaid import PlaidObjective
from genodiff.diffusion.sampling import Sampler
from genodiff.errors import InputError
from genodiff.generate.conditioning import fill
from genodiff.interop.export import load_model, read_spec, resolve_export

__all__ = ["generate_text", "fill_after_prefix", "load_export_tokenizer", "sample_entropy", "mean_entropy",
           "format_samples", "read_samples", "generative_perplexity", "SAMPLE_FORMATS"]

#: file formats of text samples: ``txt`` (separated by a line ``=====``) or ``jsonl`` (one record a line).
SAMPLE_FORMATS = ("txt", "jsonl")


# ------------------------------------------------------------------------------------ generation
def load_export_tokenizer(export: str | Path, override=None):
    """The tokenizer of an export (``export/tokenizer/``), or ``override`` (any :func:`load_tokenizer` spec)."""
    if override:
        return load_tokenizer(override)
    export = Path(export)
    if (export / "tokenizer").is_dir():
        return load_tokenizer(export / "tokenizer")
    spec = read_spec(export).get("training", {}).get("text", {}).get("tokenizer")
    if spec:
        return load_tokenizer(spec)
    raise InputError(f"text.tokenizer: {export} is not a text model export (no tokenizer/); set text.tokenizer")


def fill_after_prefix(sample_window: Callable, x: torch.Tensor, prefix_length: int, mask_id: int,
                      block_length: int | None, stride: int | None,
                      generator: torch.Generator) -> tuple[torch.Tensor, int, int]:
    """:func:`~genodiff.generate.conditioning.fill` for a known prefix followed by masks only.

    ``x`` (LongTensor[B, L]): ``prefix_length`` known tokens, then ``[MASK]``. ``block_length`` None or >= L:
    one window (``stride`` unused). Otherwise windows of ``block_length`` with ``stride`` new tokens each
    (default ``block_length // 2``). A prefix at least one window long is context only: the first window
    ends ``stride`` tokens past it (``fill`` alone would place its windows on the grid ``block_length``,
    ``block_length + stride``, ...). Returns ``(tokens [B, L], denoiser calls, steps)``.
    """
    L = x.shape[1]
    if not block_length or block_length >= L:
        return fill(sample_window, x, mask_id, None, None, generator)
    W = int(block_length)
    S = int(stride) if stride else max(1, W // 2)
    start = min(prefix_length + S, L) - W if prefix_length >= W and 0 < S <= W else 0
    if start == 0:
        return fill(sample_window, x, mask_id, W, S, generator)
    tokens, calls, steps = fill(sample_window, x[:, start:], mask_id, W, S, generator)
    return torch.cat([x[:, :start], tokens], 1), calls, steps


@torch.no_grad()
def generate_text(denoiser, objective, vocab, tokenizer, *, num_samples: int, length: int, block_length: int,
                  stride: int | None = None, sampler: dict | None = None, batch_size: int = 8, seed: int = 0,
                  prefix: str | None = None, add_bos: bool = True, device="cpu", stop_at_eos: bool = False):
    """Generate ``num_samples`` sequences of ``length`` tokens; returns (texts, token tensors, calls).

    ``sampler``: a :class:`~genodiff.diffusion.sampling.SamplerConfig` dict. Lengths above ``block_length``
    use semi-autoregressive windows with ``stride`` new tokens each (:func:`fill_after_prefix`). One
    generator seeded with ``seed`` draws all batches in turn. A Plaid model (Gaussian diffusion on embeddings)
    uses its own reverse process with ``sampler["num_steps"]`` steps; the other sampler keys do not apply."""
    if isinstance(objective, PlaidObjective):
        steps = int((sampler or {}).get("num_steps", 1000))

        def sample_window(x_init, generator):
            return objective.sample(denoiser, x_init=x_init, generator=generator, num_steps=steps)
    else:
        s = Sampler(sampler or {}, vocab)

        def sample_window(x_init, generator):
            return s.sample(denoiser, x_init=x_init, generator=generator)

    prefix_ids = []
    if add_bos:
        prefix_ids.append(tokenizer.bos_id)
    if prefix:
        prefix_ids += tokenizer.encode(prefix)
    if len(prefix_ids) >= length:
        raise InputError(f"text.prefix: {len(prefix_ids)} tokens do not leave room in length={length}")
    known = torch.full((length,), vocab.mask_id, dtype=torch.long, device=device)
    known[: len(prefix_ids)] = torch.tensor(prefix_ids, dtype=torch.long, device=device)
    texts, rows, calls = [], [], 0
    generator = torch.Generator(device=device).manual_seed(int(seed))
    for done in range(0, num_samples, batch_size):
        b = min(batch_size, num_samples - done)
        tokens, n_calls, _ = fill_after_prefix(sample_window, known.expand(b, length).clone(), len(prefix_ids),
                                               vocab.mask_id, block_length, stride, generator)
        calls += n_calls
        for row in tokens.cpu():
            ids = row.tolist()
            if stop_at_eos:
                start = len(prefix_ids)
                if tokenizer.eos_id in ids[start + 1:]:
                    ids = ids[: ids.index(tokenizer.eos_id, start + 1)]
            rows.append(row)
            texts.append(tokenizer.decode(ids))
    return texts, rows, calls


# ------------------------------------------------------------------------------- samples on disk
def sample_entropy(ids) -> float:
    """Entropy (nats) of the empirical token distribution of one sample (MDLM / ReMDM's sample entropy)."""
    ids = torch.as_tensor(ids).reshape(-1)
    if ids.numel() == 0:
        return 0.0
    counts = torch.bincount(ids - ids.min()).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def mean_entropy(texts: Sequence[str], tokenizer) -> float:
    """Mean per-sample entropy (nats) of the texts' token distributions under ``tokenizer``."""
    values = [sample_entropy(tokenizer.encode(t)) for t in texts if t]
    return sum(values) / max(1, len(values))


def format_samples(texts: Sequence[str], rows: Sequence[torch.Tensor], entropies: Sequence[float], fmt: str) -> str:
    """The body of a samples file in ``fmt`` (:data:`SAMPLE_FORMATS`); :func:`read_samples` reads it back."""
    if fmt == "jsonl":
        return "".join(json.dumps({"index": i, "text": t, "num_tokens": int(len(r)), "entropy": e}) + "\n"
                       for i, (t, r, e) in enumerate(zip(texts, rows, entropies)))
    return "".join(f"{t}\n=====\n" for t in texts)


def read_samples(path: str | Path) -> list[str]:
    """Texts of a ``samples.jsonl`` (field ``text``) or ``samples.txt`` (separated by ``=====`` lines)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"samples: file not found: {path}")
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    parts = path.read_text().split("\n=====\n")
    return [p for p in parts if p.strip()]


# ------------------------------------------------------------------------------------ evaluators
class _GenodiffAREvaluator:
    def __init__(self, export: Path, device: str):
        loaded = load_model(export, device)
        self.denoiser, self.objective, self.vocab, spec = loaded.denoiser, loaded.objective, loaded.vocab, loaded.spec
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
