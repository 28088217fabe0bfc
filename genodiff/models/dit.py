"""Diffusion Transformer (DiT) of MDLM and a causal transformer AR baseline.

Architecture (MDLM ``models/dit.py``, parameter names kept): token embedding ``vocab_embed.embedding``
(V, H); noise-level embedding ``sigma_map`` (256 sinusoidal frequencies -> MLP -> ``cond_dim``), used as
``c = silu(sigma_map(time))``; ``n_blocks`` pre-LayerNorm blocks with rotary position embeddings on q and k
and adaLN-zero modulation (``adaLN_modulation``: Linear(cond_dim, 6H), zero-initialised, so every block is
the identity at init); a final adaLN-modulated LayerNorm and a zero-initialised output ``linear``.

Attention is :func:`torch.nn.functional.scaled_dot_product_attention` (runs on CPU) with an optional key
padding mask. With ``time_conditioning=False`` the model ignores ``time`` and conditions on zeros (MDLM's
default for MDLM); with ``adaln=False`` there is no conditioning pathway at all (plain pre-LN blocks, used
by the AR baseline).

Class labels (``num_classes > 0``, needs ``adaln``): ``label_embed`` is an ``nn.Embedding(num_classes + 1,
cond_dim)`` (the last row is the null label of label dropout, N(0, 0.02) init as in DiT, Peebles & Xie 2023)
added to the noise embedding before the SiLU: ``c = silu(sigma_map(time) + label_embed(y))``, so the label
conditions every block's adaLN modulation. ``num_classes = 0``: no such module, the model is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from genodiff.data.genome.vocab import VOCAB_SIZE
from genodiff.models.config import ModelConfig

__all__ = ["TransformerShape", "DiTConfig", "DiT", "TransformerARConfig", "TransformerAR", "Rotary", "TimestepEmbedder"]


@dataclass
class TransformerShape(ModelConfig):
    """Vocabulary, width, depth and heads of a transformer (shared by :class:`DiTConfig` and
    :class:`TransformerARConfig`). Defaults: MDLM "small" (768 hidden, 12 blocks, 12 heads)."""

    vocab_size: int = VOCAB_SIZE
    hidden_size: int = 768
    n_blocks: int = 12
    n_heads: int = 12


@dataclass
class DiTConfig(TransformerShape):
    """DiT hyper-parameters (MDLM names). Defaults: MDLM "small" (768 hidden, 12 blocks, 12 heads, cond 128)."""

    cond_dim: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.1
    time_conditioning: bool = True
    adaln: bool = True
    causal: bool = False
    rotary_base: float = 10000.0
    frequency_embedding_size: int = 256
    num_classes: int = 0  # class labels + a null label (classifier-free guidance); 0 = unconditional
    #: continuous inputs: ``input_dim > 0`` adds ``input_proj`` (Linear(input_dim, hidden_size), no bias) and the
    #: model also takes float inputs (B, L, input_dim) in place of token ids (continuous diffusion, e.g. Plaid)
    input_dim: int = 0

    def __post_init__(self):
        if int(self.input_dim) < 0:
            raise ValueError(f"DiTConfig: input_dim must be >= 0, got {self.input_dim}")
        if int(self.num_classes) < 0:
            raise ValueError(f"DiTConfig: num_classes must be >= 0, got {self.num_classes}")
        if self.num_classes and not self.adaln:
            raise ValueError("DiTConfig: class labels (num_classes > 0) enter through adaLN; set adaln=True")
        if self.hidden_size % self.n_heads:
            raise ValueError(f"DiTConfig: hidden_size {self.hidden_size} not divisible by n_heads {self.n_heads}")
        if (self.hidden_size // self.n_heads) % 2:
            raise ValueError("DiTConfig: head dimension must be even (rotary embeddings)")

    @classmethod
    def small(cls, **overrides) -> "DiTConfig":
        kw = dict(hidden_size=768, n_blocks=12, n_heads=12, cond_dim=128)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def tiny(cls, **overrides) -> "DiTConfig":
        """A toy size for tests: 64 hidden, 2 blocks, 4 heads."""
        kw = dict(hidden_size=64, n_blocks=2, n_heads=4, cond_dim=32)
        kw.update(overrides)
        return cls(**kw)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """Rotary embedding (GPT-NeoX / non-interleaved layout) for head dim ``dim``.

    ``forward(L, device, dtype) -> (cos, sin)`` each (L, dim); apply as ``q * cos + rotate_half(q) * sin``.
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: Tuple[int, Any, Optional[torch.Tensor], Optional[torch.Tensor]] = (0, None, None, None)

    def forward(self, seq_len: int, device, dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        n, dev, cos, sin = self._cache
        if cos is None or n < seq_len or dev != device:
            t = torch.arange(seq_len, device=device, dtype=torch.float32)
            freqs = torch.outer(t, self.inv_freq.to(device))
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            self._cache = (seq_len, device, cos, sin)
        return cos[:seq_len].to(dtype), sin[:seq_len].to(dtype)


class TimestepEmbedder(nn.Module):
    """time (B,) float -> (B, hidden): sinusoidal features (cos | sin, ``frequency_embedding_size``) then an MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class _LayerNorm(nn.Module):
    """LayerNorm with weight only, computed in float32 (MDLM's ``LayerNorm``). (..., H) -> (..., H)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.layer_norm(x.float(), (self.dim,), eps=self.eps) * self.weight.float()).to(x.dtype)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def _zero_(linear: nn.Linear) -> nn.Linear:
    """Zero a linear layer's weight and bias in place (adaLN-zero: the layer starts as a no-op)."""
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def _adaln_modulation(cond_dim: int, out_features: int, adaln: bool) -> Optional[nn.Linear]:
    """Zero-initialised ``Linear(cond_dim, out_features)`` producing the adaLN shifts/scales/gates, or None."""
    return _zero_(nn.Linear(cond_dim, out_features, bias=True)) if adaln else None


class DiTBlock(nn.Module):
    """Pre-LN transformer block with rotary attention and (optionally) adaLN-zero. x: (B, L, H), c: (B, cond)."""

    def __init__(self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int = 4, dropout: float = 0.1,
                 adaln: bool = True, causal: bool = False):
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.dropout = dropout
        self.norm1 = _LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = _LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim, bias=True), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim, bias=True))
        self.adaLN_modulation = _adaln_modulation(cond_dim, 6 * dim, adaln)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: Optional[torch.Tensor],
                attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, L, H = x.shape
        if self.adaLN_modulation is not None:
            mods = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
            h = _modulate(self.norm1(x), shift_msa, scale_msa)
        else:
            h = self.norm1(x)
        qkv = self.attn_qkv(h).view(B, L, 3, self.n_heads, H // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, hd)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0,
                                           is_causal=self.causal and attn_mask is None)
        a = self.attn_out(a.transpose(1, 2).reshape(B, L, H))
        a = F.dropout(a, p, self.training)
        if self.adaLN_modulation is not None:
            x = x + gate_msa * a
            m = F.dropout(self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp)), p, self.training)
            return x + gate_mlp * m
        x = x + a
        return x + F.dropout(self.mlp(self.norm2(x)), p, self.training)


class DiTFinalLayer(nn.Module):
    """Final (adaLN-modulated) LayerNorm + zero-initialised linear. (B, L, H) -> (B, L, V)."""

    def __init__(self, hidden_size: int, out_channels: int, cond_dim: int, adaln: bool = True,
                 zero_init: bool = True):
        super().__init__()
        self.norm_final = _LayerNorm(hidden_size)
        self.linear = nn.Linear(hidden_size, out_channels)
        if zero_init:
            _zero_(self.linear)
        self.adaLN_modulation = _adaln_modulation(cond_dim, 2 * hidden_size, adaln)

    def normed(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        if self.adaLN_modulation is None:
            return self.norm_final(x)
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
        return _modulate(self.norm_final(x), shift, scale)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        return self.linear(self.normed(x, c))


class _EmbeddingLayer(nn.Module):
    """ids (B, L) -> (B, L, H) with parameter ``embedding`` (V, H), Kaiming-uniform init (MDLM)."""

    def __init__(self, dim: int, vocab_dim: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_dim, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding[x]


def _attention_mask(attention_mask: Optional[torch.Tensor], L: int, causal: bool, device) -> Optional[torch.Tensor]:
    """(B, L) bool (True = real token) -> SDPA boolean mask (B, 1, L, L) or None.

    Keys that are padding are masked; every query may always attend to itself so that fully padded rows
    stay finite (their outputs are meaningless but never reach real positions).
    """
    if attention_mask is None:
        return None
    keep = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, L)
    eye = torch.eye(L, dtype=torch.bool, device=device)
    m = keep | eye
    if causal:
        m = m & torch.ones(L, L, dtype=torch.bool, device=device).tril()
    return m


class DiT(nn.Module):
    """MDLM's diffusion transformer.

    ``forward(input_ids (B, L), time (B,) | None, attention_mask (B, L) bool | None) -> logits (B, L, V)``
    float32. ``time`` is the noise level fed to the timestep embedder (zeros when None or when
    ``time_conditioning`` is off). ``attention_mask`` True marks real tokens; padded keys are masked so
    padded positions do not affect the outputs at unpadded positions. Float ``input_ids`` (B, L, input_dim) are
    continuous inputs (``input_dim > 0``; :meth:`_embed`).
    """

    def __init__(self, config: Optional[DiTConfig] = None, **kwargs):
        super().__init__()
        config = config if config is not None else DiTConfig(**kwargs)
        self.config = config
        H = config.hidden_size
        self.vocab_embed = _EmbeddingLayer(H, config.vocab_size)
        if config.adaln:
            self.sigma_map = TimestepEmbedder(config.cond_dim, config.frequency_embedding_size)
        else:
            self.sigma_map = None
        self.rotary_emb = Rotary(H // config.n_heads, base=config.rotary_base)
        self.blocks = nn.ModuleList(
            DiTBlock(H, config.n_heads, config.cond_dim, config.mlp_ratio, config.dropout, adaln=config.adaln,
                     causal=config.causal)
            for _ in range(config.n_blocks))
        self.output_layer = DiTFinalLayer(H, config.vocab_size, config.cond_dim, adaln=config.adaln,
                                          zero_init=config.adaln)
        if config.num_classes:  # created last: an unconditional model draws exactly the same init
            self.label_embed = nn.Embedding(int(config.num_classes) + 1, config.cond_dim)
            nn.init.normal_(self.label_embed.weight, std=0.02)
        else:
            self.label_embed = None
        if config.input_dim:  # created last too: a model without continuous inputs is unchanged
            self.input_proj = nn.Linear(int(config.input_dim), H, bias=False)

    @property
    def num_classes(self) -> int:
        """Number of class labels (0: unconditional model); the null label id is ``num_classes``."""
        return int(self.config.num_classes)

    def _cond(self, time: Optional[torch.Tensor], batch: int, device,
              label: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """(B, cond_dim) adaLN conditioning ``silu(sigma_map(t) [+ label_embed(y)])`` or None (no adaLN).

        ``label``: LongTensor[B] (or a scalar) in ``0..num_classes``; None = the null label on a conditional
        model. A label on an unconditional model is a ``ValueError``."""
        if self.label_embed is None and label is not None:
            raise ValueError("DiT: a class label was given but the model is unconditional (num_classes=0)")
        if self.sigma_map is None:
            return None
        if time is None or not self.config.time_conditioning:
            time = torch.zeros(batch, device=device)
        time = torch.as_tensor(time, device=device, dtype=torch.float32)
        if time.dim() == 0:
            time = time.expand(batch)
        time = time.reshape(batch)
        c = self.sigma_map(time)
        if self.label_embed is not None:
            if label is None:
                label = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
            label = torch.as_tensor(label, dtype=torch.long, device=device).reshape(-1).expand(batch)
            c = c + self.label_embed(label).to(c.dtype)
        return F.silu(c)

    def _embed(self, input_ids: Optional[torch.Tensor], onehot: Optional[torch.Tensor]) -> torch.Tensor:
        """Token embeddings (B, L, H) from ids, or from one-hot rows (B, L, V' <= V) as ``onehot @ E``; float
        ``input_ids`` (B, L, input_dim) are continuous inputs, embedded as ``input_proj(input_ids)``."""
        if input_ids is not None and input_ids.is_floating_point():
            proj = getattr(self, "input_proj", None)
            if proj is None or input_ids.shape[-1] != self.config.input_dim:
                raise ValueError(f"DiT: float inputs with {input_ids.shape[-1]} channels need input_dim="
                                 f"{input_ids.shape[-1]} (the model has input_dim={self.config.input_dim})")
            return proj(input_ids.to(proj.weight.dtype))
        if onehot is None:
            return self.vocab_embed(input_ids)
        V = self.config.vocab_size
        if onehot.shape[-1] > V:
            raise ValueError(f"DiT: one-hot inputs have {onehot.shape[-1]} > {V} columns")
        return F.pad(onehot, (0, V - onehot.shape[-1])) @ self.vocab_embed.embedding

    def _trunk(self, input_ids, time, attention_mask, label=None, onehot=None):
        x = self._embed(input_ids, onehot)
        B, L = x.shape[:2]
        c = self._cond(time, B, x.device, label)
        cos, sin = self.rotary_emb(L, x.device, x.dtype)
        mask = _attention_mask(attention_mask, L, self.config.causal, x.device)
        for block in self.blocks:
            x = block(x, cos, sin, c, mask)
        return x, c

    def hidden_states(self, input_ids: Optional[torch.Tensor], time: Optional[torch.Tensor] = None,
                      attention_mask: Optional[torch.Tensor] = None, label: Optional[torch.Tensor] = None,
                      onehot: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, L) -> final normed (and modulated) hidden states (B, L, hidden_size).

        ``label``: class labels (B,) of a conditional model (see :meth:`_cond`); ``onehot``: (B, L, V') float
        instead of ``input_ids`` (differentiable embeddings, for first-order classifier guidance)."""
        x, c = self._trunk(input_ids, time, attention_mask, label, onehot)
        return self.output_layer.normed(x, c)

    features = hidden_states

    def forward(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, c = self._trunk(input_ids, time, attention_mask, label)
        return self.output_layer(x, c).float()


@dataclass
class TransformerARConfig(TransformerShape):
    """Causal transformer LM (AR baseline): DiT blocks with causal attention and no adaLN conditioning.
    Every field is the :class:`DiTConfig` field of the same name."""

    mlp_ratio: int = 4
    dropout: float = 0.1
    rotary_base: float = 10000.0


class TransformerAR(DiT):
    """Causal transformer LM: logits at position i depend only on ``input_ids[:, :i+1]``.

    Same interface as :class:`DiT`; ``time`` is ignored. (B, L) -> (B, L, V) float32.
    """

    def __init__(self, config: Optional[TransformerARConfig] = None, **kwargs):
        config = config if config is not None else TransformerARConfig(**kwargs)
        super().__init__(DiTConfig(**config.to_dict(), time_conditioning=False, adaln=False, causal=True))
        self.ar_config = config
