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

Class labels (genodiff's extension, ``num_classes > 0``): ``backbone.embeddings.label_embeddings`` is an
``nn.Embedding(num_classes + 1, d_model)`` (the last row is the null label of label dropout), zero-initialised,
whose row ``c_y`` is added to the token embedding at every position. Caduceus-PS adds ``[c_y | flip(c_y)]``
to its (B, L, 2d) state: that vector is its own reverse complement (``rc_hidden`` flips L, a no-op on a
constant, and the channels, which swaps the halves back), so the label enters both strands identically and
``model(rc(x), y) == rc_logits(model(x, y))`` holds exactly. With ``num_classes = 0`` there is no such module
and the model is the official one, bit for bit.
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
    from_stacked,
    rc_hidden,
    rc_ids,
    rc_logits,
    rcps_add_norm,
    swap_rc_stacked,
    to_stacked,
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
    #: class-conditional model (genodiff, not in the official config): ``num_classes`` labels plus the null
    #: label ``num_classes`` (label dropout, classifier-free guidance); 0 = unconditional (no label parameters)
    num_classes: int = 0
    #: continuous inputs (genodiff, not in the official config): ``input_dim > 0`` adds
    #: ``backbone.embeddings.input_proj`` (Linear(input_dim, d_model), no bias) and the model also takes float
    #: inputs (B, L, input_dim) in place of token ids (see :meth:`Caduceus.embed`); 0 = ids only (no such module)
    input_dim: int = 0

    def __post_init__(self):
        self.ssm_cfg = check_ssm_cfg(self.ssm_cfg, "CaduceusConfig")
        if self.bidirectional and self.bidirectional_strategy not in BIDIRECTIONAL_STRATEGIES:
            raise ValueError(f"CaduceusConfig: bidirectional_strategy must be one of {BIDIRECTIONAL_STRATEGIES}, "
                             f"got {self.bidirectional_strategy!r}")
        if self.d_model <= 0 or self.n_layer < 0:
            raise ValueError("CaduceusConfig: d_model must be > 0 and n_layer >= 0")
        if int(self.num_classes) < 0:
            raise ValueError(f"CaduceusConfig: num_classes must be >= 0, got {self.num_classes}")
        if int(self.input_dim) < 0:
            raise ValueError(f"CaduceusConfig: input_dim must be >= 0, got {self.input_dim}")

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

    def forward_stacked(self, hidden_states, residual=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on the stacked layout (2B, L, d) (:func:`genodiff.models.rcps.to_stacked`): the
        plain add+norm and BiMamba on 2B sequences, after the half swap when ``fused_add_norm``. Same values."""
        if self.fused_add_norm:
            hidden_states = swap_rc_stacked(hidden_states)
            residual = None if residual is None else swap_rc_stacked(residual)
        normed, residual = add_norm(hidden_states, residual, self.base_norm, prenorm=True,
                                    residual_in_fp32=self.residual_in_fp32)
        return self.mixer.submodule(normed), residual


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
        if config.num_classes:  # created last: an unconditional model draws exactly the official init
            self.backbone.embeddings.label_embeddings = nn.Embedding(int(config.num_classes) + 1, d)
            nn.init.zeros_(self.backbone.embeddings.label_embeddings.weight)  # starts as the unconditional model
        if config.input_dim:  # created last too: a model without continuous inputs is unchanged
            self.backbone.embeddings.input_proj = nn.Linear(int(config.input_dim), d, bias=False)

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

    # ------------------------------------------------------------------ labels
    @property
    def num_classes(self) -> int:
        """Number of class labels (0: unconditional model); the null label id is ``num_classes``."""
        return int(self.config.num_classes)

    def label_hidden(self, label: Optional[torch.Tensor], batch: int, device) -> Optional[torch.Tensor]:
        """The label's contribution to the embeddings, (B, 1, D') (see the module docstring), or None.

        ``label``: LongTensor[B] (or a scalar) in ``0..num_classes`` (``num_classes`` = null label); None on a
        conditional model means the null label. A label on an unconditional model is a ``ValueError``.
        """
        if not self.config.num_classes:
            if label is not None:
                raise ValueError("Caduceus: a class label was given but the model is unconditional (num_classes=0)")
            return None
        if label is None:
            label = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        label = torch.as_tensor(label, dtype=torch.long, device=device).reshape(-1).expand(batch)
        c = self.backbone.embeddings.label_embeddings(label)[:, None, :]  # (B, 1, d)
        if self.config.rcps:
            c = torch.cat([c, c.flip(-1)], dim=-1)  # [c | flip(c)] == rc_hidden of itself
        return c

    # ------------------------------------------------------------------ forward
    def embed(self, input_ids: Optional[torch.Tensor], label: Optional[torch.Tensor] = None,
              onehot: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) -> embeddings (B, L, D'), plus the label's vector (see :meth:`label_hidden`).

        Float ``input_ids`` (B, L, input_dim) are continuous inputs (``input_dim > 0``): :meth:`_embed_continuous`.

        ``onehot`` (B, L, V <= padded vocab) float instead of ``input_ids``: the same embeddings as a linear
        function of one-hot rows (equal for exact one-hot inputs; differentiable, for first-order classifier
        guidance).
        """
        if input_ids is not None and input_ids.is_floating_point():
            h = self._embed_continuous(input_ids)
        elif onehot is None:
            h = self.backbone.embeddings.word_embeddings(input_ids)
        else:
            h = self._embed_onehot(onehot)
        c = self.label_hidden(label, h.shape[0], h.device)
        return h if c is None else h + c.to(h.dtype)

    def _embed_continuous(self, inputs: torch.Tensor) -> torch.Tensor:
        """Float inputs (B, L, input_dim) -> (B, L, D') through ``input_proj`` W (continuous diffusion, e.g. Plaid).

        Ph: ``W v``. PS: ``[W v | rc_hidden(W rc_hidden(v))]``: the reverse complement of a continuous input is
        taken to be its flip over length *and channels* (the RCPS convention for hidden states), so the model is
        exactly RC-equivariant, ``model(rc_hidden(v)) == rc_logits(model(v))``, for inputs whose channel layout
        makes the flip the complement (see :mod:`genodiff.diffusion.plaid`).
        """
        proj = getattr(self.backbone.embeddings, "input_proj", None)
        if proj is None or inputs.shape[-1] != self.config.input_dim:
            raise ValueError(f"Caduceus: float inputs with {inputs.shape[-1]} channels need input_dim="
                             f"{inputs.shape[-1]} (the model has input_dim={self.config.input_dim})")
        inputs = inputs.to(proj.weight.dtype)
        if not self.config.rcps:
            return proj(inputs)
        return torch.cat([proj(inputs), rc_hidden(proj(rc_hidden(inputs)))], dim=-1)

    def _embed_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        V = self.config.padded_vocab_size
        if onehot.shape[-1] > V:
            raise ValueError(f"Caduceus: one-hot inputs have {onehot.shape[-1]} > {V} columns")
        onehot = torch.nn.functional.pad(onehot, (0, V - onehot.shape[-1]))
        emb = self.backbone.embeddings.word_embeddings
        if not self.config.rcps:
            return onehot @ emb.weight
        w = emb.embedding.weight
        rc = onehot.flip(-2)[..., self._complement]  # one-hot of rc(ids): rc(ids)[l] = comp[ids[L-1-l]]
        return torch.cat([onehot @ w, rc_hidden(rc @ w)], dim=-1)

    @property
    def _base_norm_f(self) -> nn.Module:
        """The final norm itself (PS non-fused wraps it in an :class:`RCPSAddNormWrapper`)."""
        f = self.backbone.norm_f
        return f.submodule if self.config.rcps and not self.config.fused_add_norm else f

    def backbone_forward(self, input_ids: Optional[torch.Tensor], output_layers: bool = False,
                         label: Optional[torch.Tensor] = None, onehot: Optional[torch.Tensor] = None):
        """input_ids (B, L) -> final hidden (B, L, D'); with ``output_layers`` also a dict of per-stage tensors
        (``embeddings`` (B, L, D'), ``layer_hidden`` / ``layer_residual``: lists of n_layer (B, L, D')).
        ``label`` / ``onehot``: see :meth:`embed`.

        Caduceus-PS runs its blocks on the stacked layout (:meth:`RCPSCaduceusBlock.forward_stacked`), which calls
        the blocks' BiMamba directly: forward hooks on a block or its RCPS wrapper fire only with
        ``output_layers=True`` (the per-block path; same values)."""
        h = self.embed(input_ids, label, onehot)
        if self.config.rcps and not output_layers:  # the same values without per-block split/flip/cat of halves
            residual = None
            h = to_stacked(h)
            for layer in self.backbone.layers:
                h, residual = layer.forward_stacked(h, residual)
            return from_stacked(add_norm(h, residual, self._base_norm_f, prenorm=False))
        extra = {"embeddings": h, "layer_hidden": [], "layer_residual": []} if output_layers else None
        residual = None
        for layer in self.backbone.layers:
            h, residual = layer(h, residual)
            if extra is not None:
                extra["layer_hidden"].append(h)
                extra["layer_residual"].append(residual)
        if self.config.rcps:
            out = rcps_add_norm(self._base_norm_f, h, residual, swap=False, prenorm=False,
                                residual_in_fp32=self.config.residual_in_fp32)
        else:
            out = add_norm(h, residual, self.backbone.norm_f, prenorm=False)
        return (out, extra) if output_layers else out

    def hidden_states(self, input_ids: Optional[torch.Tensor], time: Optional[torch.Tensor] = None,
                      attention_mask: Optional[torch.Tensor] = None, label: Optional[torch.Tensor] = None,
                      onehot: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) -> hidden states after ``norm_f`` (B, L, D'). ``label`` / ``onehot``: :meth:`embed`."""
        return self.backbone_forward(input_ids, label=label, onehot=onehot)

    features = hidden_states

    def forward(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) long, or (B, L, input_dim) float (continuous inputs, :meth:`embed`) [, label
        LongTensor[B]] -> logits (B, L, padded_vocab) float32."""
        return self.lm_head(self.backbone_forward(input_ids, label=label)).float()

    # ------------------------------------------------------------------ RC helpers
    def rc_input(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement of token ids (B, L) -> (B, L)."""
        return rc_ids(input_ids, self._complement)

    def conjoined_logits(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                         attention_mask: Optional[torch.Tensor] = None,
                         label: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Post-hoc conjoining (Caduceus-Ph): ``(logits(x) + rc_logits(logits(rc(x)))) / 2``, (B, L, V) float32.

        Exactly RC-equivariant for any weights: ``conjoined(rc(x)) == rc_logits(conjoined(x))``.
        """
        rc = self.rc_input(input_ids)
        if label is not None:
            label = torch.as_tensor(label, dtype=torch.long, device=input_ids.device).reshape(-1)
            label = label.expand(input_ids.shape[0]).repeat(2)
        both = self.forward(torch.cat([input_ids, rc], dim=0), label=label)
        fwd, rev = both.chunk(2, dim=0)
        return 0.5 * (fwd + rc_logits(rev, self._complement))
