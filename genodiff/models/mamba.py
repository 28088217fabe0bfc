"""Mamba (S6) mixer, the pre-norm residual block around it, and a uni-directional Mamba LM.

Parameter names and initialisation follow ``mamba_ssm.modules.mamba_simple.Mamba`` so that published
checkpoints load unchanged:

========================  ===========================  =========================================
name                      shape                        role
========================  ===========================  =========================================
``in_proj.weight``        (2 * d_inner, d_model)       output is ``[x | z]`` (x first)
``conv1d.weight/.bias``   (d_inner, 1, d_conv), (d_inner,)  causal depthwise conv, then SiLU
``x_proj.weight``         (dt_rank + 2 * d_state, d_inner)  output is ``[dt | B | C]``
``dt_proj.weight/.bias``  (d_inner, dt_rank), (d_inner,)    bias goes inside the softplus
``A_log``                 (d_inner, d_state)           ``A = -exp(A_log)``, S4D-real init log(1..N)
``D``                     (d_inner,)                   skip connection, init ones
``out_proj.weight``       (d_model, d_inner)
========================  ===========================  =========================================

The selective scan and the causal conv come from :mod:`genodiff.ops`, which dispatch on the device (CUDA
kernels when available, imported lazily there; a fast CPU kernel or a reference otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from genodiff.data.genome.vocab import VOCAB_SIZE
from genodiff.models.config import ModelConfig
from genodiff.ops.conv import causal_conv1d
from genodiff.ops.norm import LayerNorm, RMSNorm, add_norm
from genodiff.ops.mixer import mixer_inference, mixer_inference_applies, mixer_train, mixer_train_applies
from genodiff.ops.selective_scan import selective_scan

__all__ = [
    "SSM_CFG_KEYS",
    "check_ssm_cfg",
    "MambaBackboneConfig",
    "Mamba",
    "MambaBlock",
    "MambaLMConfig",
    "MambaLM",
    "selective_scan",
    "init_caduceus_weights",
    "pad_vocab_size",
]

#: keys accepted in an ``ssm_cfg`` dict (``mamba_simple.Mamba`` constructor arguments).
SSM_CFG_KEYS = (
    "d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale",
    "dt_init_floor", "conv_bias", "bias", "use_fast_path",
)


def check_ssm_cfg(ssm_cfg, owner: str) -> Dict[str, Any]:
    """``ssm_cfg`` (mapping or None) as a plain dict; ``ValueError`` naming ``owner`` for unknown keys."""
    ssm_cfg = dict(ssm_cfg or {})
    unknown = set(ssm_cfg) - set(SSM_CFG_KEYS)
    if unknown:
        raise ValueError(f"{owner}: unknown ssm_cfg keys {sorted(unknown)}; allowed: {SSM_CFG_KEYS}")
    return ssm_cfg


def pad_vocab_size(vocab_size: int, multiple: int) -> int:
    """Round ``vocab_size`` up to a multiple of ``multiple`` (no-op when ``multiple`` <= 1)."""
    if multiple and multiple > 1 and vocab_size % multiple:
        vocab_size += multiple - vocab_size % multiple
    return vocab_size


class Mamba(nn.Module):
    """Selective state-space mixer (``mamba_simple.Mamba``), input and output (B, L, d_model).

    Args mirror ``mamba_simple.Mamba``: ``d_inner = expand * d_model``; ``dt_rank="auto"`` means
    ``ceil(d_model / 16)``; ``dt`` is initialised log-uniform in [dt_min, dt_max] (floored at
    ``dt_init_floor``) through the inverse softplus of the ``dt_proj`` bias; ``dt_proj.weight`` is
    uniform (``dt_init="random"``) or constant (``"constant"``) at ``dt_rank**-0.5 * dt_scale``.
    ``use_fast_path`` is accepted for config compatibility (dispatch happens in :mod:`genodiff.ops`).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2,
        dt_rank: Union[int, str] = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: Optional[int] = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.d_model = int(d_model)
        self.d_state = int(d_state)
        self.d_conv = int(d_conv)
        self.expand = expand
        self.d_inner = int(expand * self.d_model)
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx

        self.in_proj = nn.Linear(self.d_model, 2 * self.d_inner, bias=bias, **fk)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=self.d_conv, groups=self.d_inner,
                                padding=self.d_conv - 1, bias=conv_bias, **fk)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **fk)

        dt_init_std = self.dt_rank ** -0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        else:
            raise ValueError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
        dt = torch.exp(torch.rand(self.d_inner, **fk) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        inv_dt = dt + torch.log(-torch.expm1(-dt))  # inverse of softplus
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_dt)
        self.dt_proj.bias._no_reinit = True

        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=bias, **fk)

    def ssm(self, xz: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Everything between ``in_proj`` and ``out_proj``.

        xz: (B, L, 2 * d_inner), the ``in_proj`` output ``[x | z]``. Returns y: (B, L, d_inner).
        ``reverse``: the mixer of the time-reversed sequence, in forward coordinates (``ssm(xz.flip(1)).flip(1)``).
        On a CPU in float32 this runs fused time-major kernels: forward-only without autograd
        (:func:`genodiff.ops.mixer_inference`), with a hand-written backward otherwise
        (:func:`genodiff.ops.mixer_train`); the general path below serves everything else.
        """
        params = tuple(self.parameters())
        fused = (mixer_inference if mixer_inference_applies(xz, *params)
                 else mixer_train if mixer_train_applies(xz, *params) else None)
        if fused is not None:
            return fused(xz, self.conv1d.weight.view(self.d_inner, self.d_conv), self.conv1d.bias,
                         self.x_proj.weight, self.dt_proj.weight, self.dt_proj.bias, -torch.exp(self.A_log.float()),
                         self.D, reverse)
        if reverse:
            return self.ssm(xz.flip(1)).flip(1)
        seqlen = xz.shape[1]
        xz = xz.transpose(1, 2)  # (B, 2*d_inner, L)
        x, z = xz.chunk(2, dim=1)
        x = causal_conv1d(x, self.conv1d.weight.view(self.d_inner, self.d_conv), self.conv1d.bias,
                          activation="silu")
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2*d_state)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (B, d_inner, L); bias in the scan
        Bm = Bm.transpose(1, 2).contiguous()  # (B, d_state, L)
        Cm = Cm.transpose(1, 2).contiguous()
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, delta, A, Bm, Cm, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                           delta_softplus=True)
        assert y.shape[-1] == seqlen
        return y.transpose(1, 2)  # (B, L, d_inner)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states: (B, L, d_model) -> (B, L, d_model)."""
        return self.out_proj(self.ssm(self.in_proj(hidden_states)))


def make_norm(d: int, rms_norm: bool, eps: float, device=None, dtype=None) -> nn.Module:
    """RMSNorm (weight only) or LayerNorm (weight and bias) over the last dim of size ``d``."""
    if rms_norm:
        return RMSNorm(d, eps=eps, device=device, dtype=dtype)
    return LayerNorm(d, eps=eps, device=device, dtype=dtype)


class MambaBlock(nn.Module):
    """Pre-norm residual block of ``mamba_simple.Block`` (fused and non-fused add+norm are the same math).

    ``forward(hidden_states (B, L, D), residual (B, L, D) | None) -> (mixer_out, residual)`` with
    ``residual = hidden_states + residual`` (just ``hidden_states`` in the first block) and
    ``mixer_out = mixer(norm(residual))``.
    """

    def __init__(self, d_model: int, mixer: nn.Module, norm: nn.Module, residual_in_fp32: bool = False):
        super().__init__()
        self.mixer = mixer
        self.norm = norm
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden_states: torch.Tensor, residual: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        normed, residual = add_norm(hidden_states, residual, self.norm, prenorm=True,
                                    residual_in_fp32=self.residual_in_fp32)
        return self.mixer(normed), residual


def init_caduceus_weights(model: nn.Module, n_layer: int, initializer_range: float = 0.02,
                          rescale_prenorm_residual: bool = True, n_residuals_per_layer: int = 1) -> None:
    """The ``_init_weights`` of mamba_ssm / Caduceus, applied to every submodule.

    Linear biases -> 0 (except ``dt_proj.bias``, marked ``_no_reinit``); embeddings ~ N(0, initializer_range);
    with ``rescale_prenorm_residual`` every ``out_proj.weight`` / ``fc2.weight`` is re-drawn Kaiming-uniform
    (a = sqrt(5)) and divided by ``sqrt(n_residuals_per_layer * n_layer)``.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=initializer_range)
    if rescale_prenorm_residual:
        for name, p in model.named_parameters():
            if name.endswith("out_proj.weight") or name.endswith("fc2.weight"):
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                with torch.no_grad():
                    p /= math.sqrt(n_residuals_per_layer * n_layer)


@dataclass
class MambaBackboneConfig(ModelConfig):
    """The fields every stack of Mamba blocks has (Caduceus, the Mamba LM); defaults: the paper's small size."""

    d_model: int = 118
    n_layer: int = 4
    vocab_size: int = VOCAB_SIZE
    ssm_cfg: Dict[str, Any] = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = False


@dataclass
class MambaLMConfig(MambaBackboneConfig):
    """Uni-directional (causal) Mamba language model, the AR baseline (``MambaLMHeadModel`` layout)."""

    norm_epsilon: float = 1e-5
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True
    initializer_range: float = 0.02


class MambaLM(nn.Module):
    """Causal Mamba LM: ``backbone.embedding``, ``backbone.layers.{i}.(norm|mixer)``, ``backbone.norm_f``,
    ``lm_head`` (tied to the embedding by default). Output at position i depends only on inputs <= i.
    """

    def __init__(self, config: Optional[MambaLMConfig] = None, **kwargs):
        super().__init__()
        config = config if config is not None else MambaLMConfig(**kwargs)
        check_ssm_cfg(config.ssm_cfg, "MambaLM")
        self.config = config
        self.vocab_size = pad_vocab_size(config.vocab_size, config.pad_vocab_size_multiple)
        self.backbone = nn.Module()
        self.backbone.embedding = nn.Embedding(self.vocab_size, config.d_model)
        self.backbone.layers = nn.ModuleList(
            MambaBlock(config.d_model, Mamba(config.d_model, layer_idx=i, **config.ssm_cfg),
                       make_norm(config.d_model, config.rms_norm, config.norm_epsilon),
                       residual_in_fp32=config.residual_in_fp32)
            for i in range(config.n_layer)
        )
        self.backbone.norm_f = make_norm(config.d_model, config.rms_norm, config.norm_epsilon)
        self.lm_head = nn.Linear(config.d_model, self.vocab_size, bias=False)
        init_caduceus_weights(self, config.n_layer, config.initializer_range)
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def hidden_states(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                      attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) -> final-norm hidden states (B, L, d_model). ``time``/``attention_mask`` unused
        (a causal model is unaffected by right padding)."""
        h = self.backbone.embedding(input_ids)
        residual = None
        for layer in self.backbone.layers:
            h, residual = layer(h, residual)
        return add_norm(h, residual, self.backbone.norm_f, prenorm=False)

    features = hidden_states

    def forward(self, input_ids: torch.Tensor, time: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, L) -> logits (B, L, padded vocab) float32; logits[:, i] see input_ids[:, :i+1]."""
        return self.lm_head(self.hidden_states(input_ids)).float()
