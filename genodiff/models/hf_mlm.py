"""Any Hugging Face masked language model as a genodiff backbone (``model=hf_mlm``).

:class:`HFMaskedLM` wraps ``transformers.AutoModelForMaskedLM`` (BERT, RoBERTa, Nucleotide Transformer,
DNABERT-2 or the published Caduceus with ``trust_remote_code``) behind the backbone contract of this package:

* ``forward(input_ids LongTensor[B, L], time=None, attention_mask=None) -> logits FloatTensor[B, L, V]``
  (float32; V = the model's vocabulary, ``>=`` the tokenizer's). The wrapped model has no noise-level input:
  ``time`` is accepted and ignored, so the MDLM objective runs it without time conditioning, as in the
  paper's BERT -> MDLM fine-tuning (Sahoo et al. 2024, sec. 4.1; ``objective.time_conditioning: false``).
  The diffusion core applies the SUBS parameterisation (eq. 8: ``-inf`` on ``[MASK]``, unmasked tokens
  carried over) to these logits exactly as to any other backbone's.
* ``hidden_states(input_ids, attention_mask=None) -> FloatTensor[B, L, H]``: the encoder's last hidden
  states (no MLM head), for the classification benchmark.

Where the weights come from (:class:`HFMaskedLMConfig`):

* ``hf_config`` set: the architecture is rebuilt from that config dict (``PretrainedConfig.to_dict()``), with
  random weights and nothing downloaded -- how a genodiff export of a fine-tuned model is rebuilt offline
  before its ``model.safetensors`` is loaded (:meth:`HFMaskedLM.export_spec` records it).
* else ``pretrained``: a Hub repo id or a local folder, loaded with ``from_pretrained`` (local files and the
  local Hugging Face cache first; the Hub only when reachable).

``vocab_size`` (the job fills it from the tokenizer) grows the embeddings when the tokenizer has more tokens
than the model (tokens added to a tokenizer); a larger model vocabulary is kept (logits are cut to the
diffusion vocabulary by the jobs). ``transformers`` is an optional extra (``pip install 'genodiff[hf]'``),
imported only when such a model is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from genodiff.data.hub import hub_reachable
from genodiff.errors import InputError
from genodiff.models.config import ModelConfig

__all__ = ["HFMaskedLMConfig", "HFMaskedLM", "require_transformers", "strip_hf_prefix", "hf_load"]


@dataclass
class HFMaskedLMConfig(ModelConfig):
    """Which Hugging Face masked LM to wrap (see the module docstring).

    pretrained: Hub repo id (``bert-base-uncased``, ``hf:`` prefix allowed) or local folder.
    hf_config: a transformers config dict; when set the model is built from it (random init, no download).
    trust_remote_code: allow the repository's own modelling code (DNABERT-2, Nucleotide Transformer v2,
        Caduceus); off unless the user turns it on.
    revision: Hub revision (branch, tag or commit).
    vocab_size: grow the token embeddings to this many tokens when larger than the model's.
    config_overrides: config attributes to change (e.g. ``{hidden_dropout_prob: 0.0}``).
    """

    pretrained: Optional[str] = None
    hf_config: Optional[dict] = None
    trust_remote_code: bool = False
    revision: Optional[str] = None
    vocab_size: Optional[int] = None
    config_overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pretrained is None and self.hf_config is None:
            raise ValueError("HFMaskedLMConfig: set model.pretrained (a Hub name or a local folder) or hf_config")
        if self.pretrained is not None:
            self.pretrained = strip_hf_prefix(str(self.pretrained))


def strip_hf_prefix(name: str) -> str:
    """``hf:owner/repo`` -> ``owner/repo``; anything else unchanged."""
    return name[3:] if name.startswith("hf:") else name


def require_transformers(what: str):
    """The ``transformers`` module, or one :class:`InputError` line saying how to install it."""
    try:
        import transformers  # noqa: PLC0415  (optional extra)
    except ModuleNotFoundError:
        raise InputError(f"{what}: the 'transformers' package is not installed "
                         "(pip install 'genodiff[hf]' or pip install transformers)") from None
    return transformers


def hf_load(what: str, name: str, load):
    """``load(local_files_only)`` for a Hub name or folder: local files first, then the Hub when reachable;
    failures become one InputError line naming ``what`` and ``name``."""
    local = Path(name).expanduser().is_dir()
    try:
        return load(True)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  (transformers raises OSError, ValueError, EnvironmentError ...)
        first = exc
    if local or not hub_reachable():
        where = "the local folder" if local else "not in the local Hugging Face cache and the Hub is unreachable"
        raise InputError(f"{what} '{name}': cannot load ({where}: {type(first).__name__}: "
                         f"{str(first).splitlines()[0][:200] if str(first) else ''})") from None
    try:
        return load(False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{what} '{name}': {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None


class HFMaskedLM(nn.Module):
    """A ``transformers`` masked LM as a backbone (see the module docstring). ``self.model`` is the wrapped
    ``PreTrainedModel``; ``self.config`` the :class:`HFMaskedLMConfig`."""

    def __init__(self, config: Optional[HFMaskedLMConfig] = None, **kwargs):
        super().__init__()
        config = config if config is not None else HFMaskedLMConfig(**kwargs)
        tf = require_transformers("model=hf_mlm")
        self.model = self._build(tf, config)
        if config.vocab_size and int(config.vocab_size) > self.model.get_input_embeddings().num_embeddings:
            self.model.resize_token_embeddings(int(config.vocab_size))
        self.model.float().train()  # from_pretrained returns eval mode; a new module starts in train mode
        self.config = config

    # ---------------------------------------------------------------------------------------- build
    @staticmethod
    def _build(tf, config: HFMaskedLMConfig):
        remote = bool(config.trust_remote_code)
        overrides = dict(config.config_overrides or {})
        if config.hf_config is not None:
            hf_config = HFMaskedLM._config_from_dict(tf, config)
            for key, value in overrides.items():
                setattr(hf_config, key, value)
            return tf.AutoModelForMaskedLM.from_config(hf_config, trust_remote_code=remote)
        name = str(config.pretrained)

        def load(local_files_only: bool):
            return tf.AutoModelForMaskedLM.from_pretrained(
                name, trust_remote_code=remote, revision=config.revision, local_files_only=local_files_only,
                dtype=torch.float32, **overrides)
        return hf_load("model.pretrained", name, load)

    @staticmethod
    def _config_from_dict(tf, config: HFMaskedLMConfig):
        """A ``PretrainedConfig`` from a ``to_dict()`` dict: built-in model types offline; remote-code ones
        through their (cached) configuration class."""
        spec = dict(config.hf_config)
        model_type = spec.pop("model_type", None)
        if model_type in tf.CONFIG_MAPPING:
            return tf.AutoConfig.for_model(model_type, **spec)
        if not config.pretrained:
            raise InputError(f"model.hf_config: model_type '{model_type}' is not built into transformers and no "
                             "model.pretrained names its code")
        name = str(config.pretrained)

        def load(local_files_only: bool):
            return tf.AutoConfig.from_pretrained(name, trust_remote_code=bool(config.trust_remote_code),
                                                 revision=config.revision, local_files_only=local_files_only)
        hf_config = hf_load("model.pretrained", name, load)
        for key, value in spec.items():
            setattr(hf_config, key, value)
        return hf_config

    # ---------------------------------------------------------------------------------------- describe
    @property
    def vocab_size(self) -> int:
        """V: the number of logits (the model's embedding rows)."""
        return int(self.model.get_input_embeddings().num_embeddings)

    @property
    def hidden_size(self) -> Optional[int]:
        cfg = self.model.config
        for key in ("hidden_size", "d_model", "dim"):
            value = getattr(cfg, key, None)
            if isinstance(value, int):
                return value
        return None

    def export_spec(self) -> dict[str, Any]:
        """The registry spec that rebuilds this architecture offline (``{"name": "hf_mlm", ...}`` with
        ``hf_config`` filled from the wrapped model): what a genodiff export records."""
        spec = dataclasses.asdict(self.config)
        spec["hf_config"] = _jsonable(self.model.config.to_dict())
        spec["vocab_size"] = self.vocab_size
        return {"name": "hf_mlm", **spec}

    # ---------------------------------------------------------------------------------------- compute
    def forward(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits FloatTensor[B, L, V] of the masked LM at ``input_ids`` (LongTensor[B, L]); ``time`` is ignored
        (no noise-level input); ``attention_mask`` (Bool/LongTensor[B, L], True = token) hides padding."""
        mask = attention_mask.long() if attention_mask is not None else None
        out = self.model(input_ids=input_ids, attention_mask=mask)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return logits.float()

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The encoder's last hidden states FloatTensor[B, L, H] (the MLM head is not run)."""
        mask = attention_mask.long() if attention_mask is not None else None
        base = getattr(self.model, "base_model", None)
        if base is not None and base is not self.model:
            out = base(input_ids=input_ids, attention_mask=mask)
            h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        else:
            out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            h = out.hidden_states[-1]
        return h.float()


def _jsonable(value: Any) -> Any:
    """A config dict with torch dtypes and other objects turned into JSON values (strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value).replace("torch.", "")
