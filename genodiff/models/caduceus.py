"""Caduceus-Ph and Caduceus-PS (Schiff et al. 2024): BiMamba backbone, optionally RC-equivariant (RCPS).

The module tree mirrors the official ``CaduceusForMaskedLM`` with the ``caduceus.`` prefix dropped, so a
Hugging Face state_dict key is ``"caduceus." + key`` for ``backbone.*`` and unchanged for ``lm_head.*``:

* ``backbone.embeddings.word_embeddings``: ``nn.Embedding`` (Ph) or :class:`RCPSEmbedding` (PS).
* ``backbone.layers.{i}.norm`` / ``.mixer``: :class:`~genodiff.models.bimamba.BiMamba` mixer (PS: wrapped in
  :class:`RCPSWrapper`, hence ``mixer.submodule.*``); the PS non-fused norm is an
  :class:`RCPSAddNormWrapper` (``norm.submodule.weight``).
* ``backbone.norm_f`` (PS non-fused: ``norm_f.submodule.weight``), ``lm_head`` tied to the embedding.

Semantics reproduced exactly (see ``../shared/fixtures/caduceus_parity/README.md``): pre-norm blocks with a
separate residual stream, vocabulary padding, and for PS with ``fused_add_norm`` the official fused block's
channel-half swap at every layer (the final norm does not swap). Caduceus has no attention mask: ``[PAD]``
and ``[MASK]`` are ordinary tokens and both scan directions run through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from genodiff.data.genome.vocab import COMPLEMENT_MAP
from genodiff.models.bimamba import BIDIRECTIONAL_STRATEGIES, BiMamba
from genodiff.models.mamba import (
    MambaBackboneConfig,
    MambaBlock,
    check_ssm_cfg,
    init_caduceus_weights,
    make_norm,
    pad_vocab_size,
)
from genodiff.models.rcps import (
    RCPSAddNormWrapper,
    RCPSEmbedding,
    RCPSLMHead,
    RCPSWrapper,
    complement_tensor,
    rc_ids,
    rc_logits,
    rcps_add_norm,
)
from genodiff.ops.norm import add_norm

__all__ = ["CaduceusConfig", "Caduceus", "CaduceusBlock", "RCPSCaduceusBlock"]


@dataclass
class CaduceusConfig(MambaBackboneConfig):
    """Caduceus hyper-parameters; field names are those of the Hugging Face ``config.json``.

    ``vocab_size`` is rounded up to ``pad_vocab_size_multiple`` by the model (see :attr:`padded_vocab_size`);
    ``complement_map`` (dict id -> id, list, or None for the DNA vocabulary's) is extended with the identity
    over the padding ids. Defaults are the paper's small model (d_model 118, 4 layers, ~470k parameters)
    with the settings of the published checkpoints.
    """

    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    norm_epsilon: float = 1e-5
    initializer_cfg: Optional[Dict[str, Any]] = None
    bidirectional: bool = True
    bidirectional_strategy: Optional[str] = "add"
    bidirectional_weight_tie: bool = True
    rcps: bool = False
    complement_map: Optional[Any] = None
    gradient_checkpointing_stride: int = 1  # accepted for config compatibility; unused

    def __post_init__(self):
        self.ssm_cfg = check_ssm_cfg(self.ssm_cfg, "CaduceusConfig")
        if self.bidirectional and self.bidirectional_strategy not in BIDIRECTIONAL_STRATEGIES:
            raise ValueError(f"CaduceusConfig: bidirectional_strategy must be one of {BIDIRECTIONAL_STRATEGIES}, "
                             f"got {self.bidirectional_strategy!r}")
        if self.d_model <= 0 or self.n_layer < 0:
            raise ValueError("CaduceusConfig: d_model must be > 0 and n_layer >= 0")

    @property
    def padded_vocab_size(self) -> int:
        return pad_vocab_size(self.vocab_size, self.pad_vocab_size_multiple)

    def complement_list(self) -> List[int]:
        """Complement map as a list over the padded vocabulary (identity on padding ids)."""
        cm = self.complement_map
        if cm is None:
            base = list(COMPLEMENT_MAP)
        elif isinstance(cm, dict):
            # official code uses the dict values in insertion order; JSON keys are "0".."V-1" in order
            items = sorted(((int(k), int(v)) for k, v in cm.items()), key=lambda kv: kv[0])
            if [k for k, _ in items] != list(range(len(items))):
                raise ValueError("CaduceusConfig: complement_map keys must be 0..n-1")
            base = [v for _, v in items]
        else:
            base = [int(v) for v in cm]
        n = self.padded_vocab_size
        if len(base) > n:
            raise ValueError(f"CaduceusConfig: complement_map has {len(base)} entries > vocab size {n}")
        base = base + list(range(len(base), n))
        if sorted(base) != list(range(n)) or any(base[base[i]] != i for i in range(n)):
            raise ValueError("CaduceusConfig: complement_map must be an involution over the vocabulary")
        return base

    @classmethod
    def paper(cls, rcps: bool = False, **overrides) -> "CaduceusConfig":
        """The paper's / published small Caduceus: d_model 118, 4 layers (Ph: rcps=False, PS: rcps=True)."""
        kw = dict(d_model=118, n_layer=4, rcps=rcps, fused_add_norm=True, residual_in_fp32=False,
                  ssm_cfg=dict(d_state=16, d_conv=4, expand=2, dt_rank="auto", conv_bias=True, bias=False))
        kw.update(overrides)
        return cls(**kw)


class CaduceusBlock(MambaBlock):
    """Caduceus-Ph block: the pre-norm :class:`MambaBlock` (``residual = h + residual``;
    ``h = mixer(norm(residual))``) around a BiMamba mixer. Tensors (B, L, d)."""

    def __init__(self, mixer: nn.Module, norm: nn.Module, residual_in_fp32: bool = False):
        super().__init__(norm.hidden_size, mixer, norm, residual_in_fp32)


class RCPSCaduceusBlock(nn.Module):
    """Caduceus-PS block on (B, L, 2d) tensors: RCPS add+norm, then ``RCPSWrapper(BiMamba)``.

    ``fused_add_norm=True`` reproduces the official fused block: the channel halves are swapped before the
    add+norm (``residual_out = [s2 | s1]``); ``False`` is the non-fused path (no swap, norm under
    ``norm.submodule``). Both are exactly RC-equivariant.
    """

    def __init__(self, mixer: nn.Module, norm: nn.Module, fused_add_norm: bool, residual_in_fp32: bool = False):
        super().__init__()
        self.fused_add_norm = fused_add_norm
        self.residual_in_fp32 = residual_in_fp32
        self.mixer = RCPSWrapper(mixer)
        self.norm = norm if fused_add_norm else RCPSAddNormWrapper(norm, residual_in_fp32=residual_in_fp32)

    @property
    def base_norm(self) -> nn.Module:
        return self.norm if self.fused_add_norm else self.norm.submodule

    def forward(self, hidden_states, residual=None) -> Tuple[torch.Tensor, torch.Tensor]:
        normed, residual = rcps_add_norm(self.base_norm, hidden_states, residual, swap=self.fused_add_norm,
                                         prenorm=True, residual_in_fp32=self.residual_in_fp32)
        return self.mixer(normed), residual


class Caduceus(nn.Module):
    """Caduceus masked LM backbone + tied LM head.

    ``forward(input_ids (B, L), time=None, attention_mask=None) -> logits (B, L, padded_vocab) float32``.
    ``time`` and ``attention_mask`` are accepted for the common backbone interface and ignored (the official
    model has neither). Hidden width ``D' = d_model`` (Ph) or ``2 * d_model`` (PS).
    """

    def __init__(self, config: Optional[CaduceusConfig] = None, **kwargs):
        super().__init__()
        config = config if config is not None else CaduceusConfig(**kwargs)
        self.config = config
        d = config.d_model
        V = config.padded_vocab_size
        comp = config.complement_list()
        self.register_buffer("_complement", complement_tensor(comp), persistent=False)

        self.backbone = nn.Module()
        self.backbone.embeddings = nn.Module()
        if config.rcps:
            self.backbone.embeddings.word_embeddings = RCPSEmbedding(V, d, comp)
        else:
            self.backbone.embeddings.word_embeddings = nn.Embedding(V, d)
        layers = []
        for i in range(config.n_layer):
            mixer = BiMamba(d, bidirectional=config.bidirectional,
                            bidirectional_strategy=config.bidirectional_strategy,
                            bidirectional_weight_tie=config.bidirectional_weight_tie,
                            layer_idx=i, **config.ssm_cfg)
            norm = make_norm(d, config.rms_norm, config.norm_epsilon)
            if config.rcps:
                layers.append(RCPSCaduceusBlock(mixer, norm, config.fused_add_norm, config.residual_in_fp32))
            else:
                layers.append(CaduceusBlock(mixer, norm, config.residual_in_fp32))
        self.backbone.layers = nn.ModuleList(layers)
        norm_f = make_norm(d, config.rms_norm, config.norm_epsilon)
        if config.rcps and not config.fused_add_norm:
            self.backbone.norm_f = RCPSAddNormWrapper(norm_f, residual_in_fp32=config.residual_in_fp32)
        else:
            self.backbone.norm_f = norm_f
        if config.rcps:
            self.lm_head = RCPSLMHead(d, V, comp)
        else:
            self.lm_head = nn.Linear(d, V, bias=False)

        icfg = dict(config.initializer_cfg or {})
        init_caduceus_weights(self, config.n_layer, initializer_range=icfg.get("initializer_range", 0.02),
                              rescale_prenorm_residual=icfg.get("rescale_prenorm_residual", True),
                              n_residuals_per_layer=icfg.get("n_residuals_per_layer", 1))
        self.tie_weights()

    # ------------------------------------------------------------------ weights
    def tie_weights(self) -> None:
        """Tie the LM head to the embedding and each layer's ``mamba_rev`` in/out projections to ``mamba_fwd``."""
        if self.config.rcps:
            self.lm_head.lm_head.weight = self.backbone.embeddings.word_embeddings.embedding.weight
        else:
            self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight
        for layer in self.backbone.layers:
            mixer = layer.mixer.submodule if self.config.rcps else layer.mixer
            mixer.tie_weights()

    @property
    def hidden_size(self) -> int:
        """Width D' of :meth:`hidden_states`: d_model (Ph) or 2 * d_model (PS)."""
        return self.config.d_model * (2 if self.config.rcps else 1)

    @property
    def complement_map(self) -> torch.Tensor:
        """(padded_vocab,) long tensor: id of the complement of each token."""
        return self._complement

    # ------------------------------------------------------------------ forward
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, L) -> embeddings (B, L, D')."""
        return self.backbone.embeddings.word_embeddings(input_ids)

    def backbone_forward(self, input_ids: torch.Tensor, output_layers: bool = False):
        """input_ids (B, L) -> final hidden (B, L, D'); with ``output_layers`` also a dict of per-stage tensors
        (``embeddings`` (B, L, D'), ``layer_hidden`` / ``layer_residual``: lists of n_layer (B, L, D'))."""
        h = self.embed(input_ids)
        extra = {"embeddings": h, "layer_hidden": [], "layer_residual": []} if output_layers else None
        residual = None
        for layer in self.backbone.layers:
            h, residual = layer(h, residual)
            if extra is not None:
                extra["layer_hidden"].append(h)
                extra["layer_residual"].append(residual)
        if self.config.rcps:
            norm = self.backbone.norm_f if self.config.fused_add_norm else self.backbone.norm_f.submodule
            out = rcps_add_norm(norm, h, residual, swap=False, prenorm=False,
                                residual_in_fp32=self.config.residual_in_fp32)
        else:
            out = add_norm(h, residual, self.backbone.norm_f, prenorm=False)
        return (out, extra) if output_layers else out

    def hidden_states(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                      attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) -> hidden states after ``norm_f`` (B, L, D')."""
        return self.backbone_forward(input_ids)

    features = hidden_states

    def forward(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) long -> logits (B, L, padded_vocab) float32."""
        return self.lm_head(self.backbone_forward(input_ids)).float()

    # ------------------------------------------------------------------ RC helpers
    def rc_input(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement of token ids (B, L) -> (B, L)."""
        return rc_ids(input_ids, self._complement)

    def conjoined_logits(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                         attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Post-hoc conjoining (Caduceus-Ph): ``(logits(x) + rc_logits(logits(rc(x)))) / 2``, (B, L, V) float32.

        Exactly RC-equivariant for any weights: ``conjoined(rc(x)) == rc_logits(conjoined(x))``.
        """
        rc = self.rc_input(input_ids)
        both = self.forward(torch.cat([input_ids, rc], dim=0))
        fwd, rev = both.chunk(2, dim=0)
        return 0.5 * (fwd + rc_logits(rev, self._complement))
