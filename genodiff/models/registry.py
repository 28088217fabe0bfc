"""Backbone registry: ``build_model(name, **config_kwargs)`` so Hydra configs mirror constructor arguments.

Names: ``caduceus`` (any :class:`CaduceusConfig` fields), ``caduceus_ph`` / ``caduceus_ps`` (the paper's
d_model 118, 4 layers, overridable), ``dit`` (:class:`DiTConfig`, default MDLM small), ``dit_small``,
``mamba_lm`` (:class:`MambaLMConfig`), ``transformer_ar`` (:class:`TransformerARConfig`),
``sequence_classifier`` (:class:`SequenceClassifierConfig`: a registry backbone spec + classification head),
``hf_mlm`` (:class:`HFMaskedLMConfig`: any Hugging Face masked LM; needs ``transformers``).
"""

from __future__ import annotations

from typing import Callable, Dict

import torch.nn as nn

from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.dit import DiT, DiTConfig, TransformerAR, TransformerARConfig
from genodiff.models.heads import SequenceClassifier, SequenceClassifierConfig
from genodiff.models.hf_mlm import HFMaskedLM, HFMaskedLMConfig
from genodiff.models.mamba import MambaLM, MambaLMConfig

__all__ = ["build_model", "register_model", "MODEL_REGISTRY"]

MODEL_REGISTRY: Dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register ``factory(**config_kwargs) -> nn.Module`` under ``name`` (overwrites)."""
    MODEL_REGISTRY[name] = factory


def build_model(name: str, **config_kwargs) -> nn.Module:
    """Build a backbone by registry name; ``config_kwargs`` are the config dataclass's fields, as plain
    Python values (jobs convert their config nodes with ``genodiff.config.to_plain``).

    Raises ``ValueError`` for an unknown name and ``TypeError`` for an unknown config field.
    """
    try:
        factory = MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}") from None
    return factory(**config_kwargs)


register_model("caduceus", lambda **kw: Caduceus(CaduceusConfig(**kw)))
register_model("caduceus_ph", lambda **kw: Caduceus(CaduceusConfig.paper(rcps=False, **kw)))
register_model("caduceus_ps", lambda **kw: Caduceus(CaduceusConfig.paper(rcps=True, **kw)))
register_model("dit", lambda **kw: DiT(DiTConfig(**kw)))
register_model("dit_small", lambda **kw: DiT(DiTConfig.small(**kw)))
register_model("mamba_lm", lambda **kw: MambaLM(MambaLMConfig(**kw)))
register_model("transformer_ar", lambda **kw: TransformerAR(TransformerARConfig(**kw)))
register_model("hf_mlm", lambda **kw: HFMaskedLM(HFMaskedLMConfig(**kw)))


def _sequence_classifier(**kw) -> nn.Module:
    config = SequenceClassifierConfig(**kw)
    spec = dict(config.backbone)
    return SequenceClassifier(build_model(spec.pop("name"), **spec), config)


register_model("sequence_classifier", _sequence_classifier)
