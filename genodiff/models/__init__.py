"""genodiff.models: backbones with dataclass configs (pure torch, no diffusion knowledge).

Every backbone: ``forward(input_ids (B, L) long, time (B,) | None, attention_mask (B, L) bool | None)
-> logits (B, L, V) float32`` and ``hidden_states(...)`` / ``features(...)`` -> (B, L, D).
"""

from genodiff.models.bimamba import BiMamba
from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.dit import DiT, DiTConfig, TransformerAR, TransformerARConfig
from genodiff.models.heads import ClassificationHead, pool_hidden
from genodiff.models.mamba import Mamba, MambaBlock, MambaLM, MambaLMConfig
from genodiff.models.rcps import RCPSEmbedding, RCPSLMHead, RCPSWrapper, rc_hidden, rc_ids, rc_logits
from genodiff.models.registry import MODEL_REGISTRY, build_model, register_model

__all__ = [
    "BiMamba",
    "Caduceus",
    "CaduceusConfig",
    "ClassificationHead",
    "DiT",
    "DiTConfig",
    "MODEL_REGISTRY",
    "Mamba",
    "MambaBlock",
    "MambaLM",
    "MambaLMConfig",
    "RCPSEmbedding",
    "RCPSLMHead",
    "RCPSWrapper",
    "TransformerAR",
    "TransformerARConfig",
    "build_model",
    "pool_hidden",
    "rc_hidden",
    "rc_ids",
    "rc_logits",
    "register_model",
]
