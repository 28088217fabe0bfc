"""Hugging Face masked LMs in: their tokenizers as genodiff text tokenizers, and whole models as genodiff exports.

* :func:`load_hf_tokenizer`: the model's own tokenizer as a :class:`~genodiff.data.text.tokenizers.HFTokenizer`
  (a folder's ``tokenizer.json`` directly; otherwise ``transformers.AutoTokenizer``'s fast tokenizer). Its
  ``[MASK]`` and ``[PAD]`` ids are the diffusion vocabulary's (:func:`~genodiff.data.text.tokenizers.vocab_spec`):
  ``[MASK]`` is the absorbing state and never predicted (SUBS), ``[PAD]`` is never noised nor scored.
* :func:`import_hf_mlm`: a masked LM (``bert-base-uncased``, a local folder, a ``trust_remote_code`` DNA model) as
  a genodiff export (``model.safetensors`` + ``genodiff.json`` + ``tokenizer/``): the MDLM objective without
  time conditioning over the tokenizer's vocabulary. Every job then loads it like a trained model
  (``genodiff evaluate checkpoints=[...]`` for the zero-shot NELBO of the MLM as an MDLM denoiser,
  ``genodiff sample``, ``genodiff benchmark model.init=...``). The export records the transformers config
  (``model.hf_config``), so it reloads offline without the original folder.

Training from an HF backbone needs nothing here: ``model=hf_mlm model.pretrained=<name or folder>``
(:mod:`genodiff.models.hf_mlm`) with ``data.tokenizer`` set to the same name or folder; the training export
records ``hf_config`` through :meth:`~genodiff.models.hf_mlm.HFMaskedLM.export_spec`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genodiff.data.text.tokenizers import HFTokenizer, load_tokenizer, vocab_spec
from genodiff.errors import InputError
from genodiff.interop.export import save_export
from genodiff.models.hf_mlm import HFMaskedLM, HFMaskedLMConfig, hf_load, require_transformers, strip_hf_prefix

__all__ = ["load_hf_tokenizer", "import_hf_mlm", "MDLM_NO_TIME"]

#: the objective an imported masked LM is paired with: MDLM, log-linear schedule, no time conditioning (the
#: model has no noise-level input), exactly the setting of the paper's BERT -> MDLM fine-tuning
MDLM_NO_TIME: dict[str, Any] = {"name": "mdlm", "schedule": {"name": "loglinear"}, "time_conditioning": False}


def load_hf_tokenizer(name: str | os.PathLike, trust_remote_code: bool = False,
                      revision: str | None = None) -> HFTokenizer:
    """The tokenizer of a Hugging Face model (Hub name, ``hf:`` name or folder) as a genodiff text tokenizer.

    A folder holding ``tokenizer.json`` is read with the ``tokenizers`` library; anything else goes through
    ``transformers.AutoTokenizer`` (local files first, the Hub when reachable), which must offer a fast
    tokenizer. One :class:`InputError` line otherwise."""
    name = strip_hf_prefix(str(name))
    path = Path(name).expanduser()
    if path.is_dir() and ((path / "tokenizer.json").is_file() or (path / "text_tokenizer.json").is_file()):
        return load_tokenizer(path)
    tf = require_transformers(f"tokenizer '{name}'")

    def load(local_files_only: bool):
        return tf.AutoTokenizer.from_pretrained(name, trust_remote_code=bool(trust_remote_code), revision=revision,
                                                local_files_only=local_files_only, use_fast=True)
    tok = hf_load("tokenizer", name, load)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise InputError(f"tokenizer '{name}': {type(tok).__name__} has no fast (tokenizers) version, which the text "
                         "path needs; pass data.tokenizer=<a tokenizer.json>")
    return HFTokenizer(backend, name=name)


def _context_length(model: HFMaskedLM, default: int = 512) -> int:
    """Tokens per window the model was built for: ``max_position_embeddings`` (RoBERTa-style position offsets
    of ``pad_token_id + 1`` subtracted), else ``default``."""
    cfg = model.model.config
    n = getattr(cfg, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0 or n > 1 << 20:
        return default
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "esm"):
        n -= int(getattr(cfg, "pad_token_id", 1) or 1) + 1
    return int(n)


def import_hf_mlm(pretrained: str | os.PathLike, out_dir: str | os.PathLike, *, trust_remote_code: bool = False,
                  revision: str | None = None, tokenizer: str | os.PathLike | None = None,
                  seq_len: int | None = None, mode: str = "wrap") -> Path:
    """Write the masked LM ``pretrained`` as a genodiff export in ``out_dir`` (see the module docstring).

    ``tokenizer``: another tokenizer name or folder (default: the model's own). ``seq_len`` / ``mode``: the
    text windows recorded for sampling and evaluation (default: the model's context, packed ``wrap``)."""
    name = strip_hf_prefix(str(pretrained))
    tok = load_hf_tokenizer(tokenizer or name, trust_remote_code, revision)
    vocab = vocab_spec(tok)
    model = HFMaskedLM(HFMaskedLMConfig(pretrained=name, trust_remote_code=trust_remote_code, revision=revision,
                                        vocab_size=vocab["num_tokens"]))
    if model.vocab_size < vocab["num_tokens"]:  # cannot happen after the resize; kept as a guard
        raise InputError(f"{name}: the model has {model.vocab_size} tokens, the tokenizer {vocab['num_tokens']}")
    text = {"tokenizer": tok.spec(), "seq_len": int(seq_len or _context_length(model)), "mode": mode,
            "add_bos_eos": True, "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    spec = {"model": model.export_spec(), "objective": dict(MDLM_NO_TIME), "vocab": vocab,
            "training": {"job": "import_hf_mlm", "global_step": 0, "ema": False, "init": f"hf:{name}",
                         "text": text}}
    out = save_export(model.eval(), spec, out_dir)
    tok.save(out / "tokenizer")
    return out
