"""Deterministic stand-in denoisers for fast tests (no training)."""

from __future__ import annotations

import torch

from genodiff.data.genome import vocab as V
from genodiff.diffusion.objectives import MDLMObjective
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.interop.export import LoadedModel


def hashed_denoiser(x_t: torch.Tensor, t=None) -> torch.Tensor:
    """Logits [B, L, 12] that depend on the neighbours of each position (a fixed, context-dependent model)."""
    B, L = x_t.shape
    left = torch.roll(x_t, 1, dims=1)
    right = torch.roll(x_t, -1, dims=1)
    h = (left * 31 + right * 17 + torch.arange(L)[None] % 7).float()
    logits = torch.zeros(B, L, V.VOCAB_SIZE)
    for j, tok in enumerate(V.DNA_IDS):
        logits[..., tok] = torch.sin(h * (j + 1) * 0.37)
    return logits


PERIOD = "ACGTTGCA"  # its reverse complement TGCAACGT is a rotation: the periodic world is RC-closed


def periodic_denoiser(x_t: torch.Tensor, t=None, eps: float = 1e-4) -> torch.Tensor:
    """Exact posterior denoiser for the world "x is PERIOD repeated, at a uniformly random phase".

    For each row, the phases consistent with all unmasked A/C/G/T tokens get equal weight and each masked
    position is predicted as the mixture of their bases (uniform when no phase is consistent).
    Logits = log(probability + eps) over A/C/G/T.
    """
    B, L = x_t.shape
    ids = torch.tensor([V.A_ID + "ACGT".index(c) for c in PERIOD])
    pos = torch.arange(L)
    cand = torch.stack([ids[(pos + phase) % len(PERIOD)] for phase in range(len(PERIOD))])  # [P, L]
    known = (x_t >= V.A_ID) & (x_t <= V.T_ID)
    agree = ((cand[None] == x_t[:, None]) | ~known[:, None]).all(-1).float()  # [B, P]
    none = agree.sum(-1) == 0
    agree[none] = 1.0
    w = agree / agree.sum(-1, keepdim=True)
    probs = torch.zeros(B, L, V.VOCAB_SIZE)
    for phase in range(len(PERIOD)):
        probs.scatter_add_(2, cand[phase].expand(B, L)[..., None], w[:, phase, None, None].expand(B, L, 1))
    logits = torch.full((B, L, V.VOCAB_SIZE), -1e9)
    for tok in V.DNA_IDS:
        logits[..., tok] = torch.log(probs[..., tok] + eps)
    return logits


class _DenoiserModule(torch.nn.Module):
    """A backbone whose forward is a plain denoiser function."""

    def __init__(self, denoiser):
        super().__init__()
        self.fn = denoiser

    def forward(self, x_t, time=None):
        return self.fn(x_t, time)


def fake_model(denoiser=hashed_denoiser) -> LoadedModel:
    vocab = DiffusionVocab.dna()
    objective = MDLMObjective({"time_conditioning": False}, vocab)
    return LoadedModel(_DenoiserModule(denoiser), objective, vocab, {"model": {"name": "fake"}}, "fake", "fake",
                       "sha256:0", "cpu")
