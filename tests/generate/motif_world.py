"""An exact "planted motif" world for variant-effect tests (no training).

World on windows of L bases: with probability ``rho`` the window is i.i.d. uniform A/C/G/T; otherwise a
motif M (k bases) is written at a uniformly random start j in ``0..L-k`` over an i.i.d. uniform background.
So, with ``c(x)`` the number of starts where x reads M,

    p(x) = 4^-L * (rho + (1 - rho) * 4^k * c(x) / (L - k + 1))                                     (1)

:func:`motif_denoiser` is the exact posterior ``p(x_l | unmasked bases)`` of this world (time-independent
for the masking process). Weights of the components given the unmasked set U (times 4^|U|): background
``rho``; motif at j ``(1 - rho) / (L - k + 1) * 4^|U ∩ [j, j+k)|`` if the unmasked bases in ``[j, j+k)``
read M there, else 0. A masked base gets ``M[l - j]`` from the motif components covering it and 1/4 from
the others. For an exact denoiser the MDLM NELBO equals ``-log p`` in expectation (any-order chain rule),
so a variant's llr estimates ``log p(alt window) - log p(ref window)`` from (1) exactly:
:func:`exact_llr` is the oracle.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from fakes import fake_model

from genodiff.data.genome import vocab as V

_BASE_IDS = torch.tensor(V.DNA_IDS)


def motif_denoiser(x_t: torch.Tensor, t=None, motif: str = "TATAAGGC", rho: float = 0.5) -> torch.Tensor:
    """Logits [B, L, 12] (float64, log-probabilities over A/C/G/T, -1e9 elsewhere); see module docstring."""
    B, L = x_t.shape
    k = len(motif)
    m_ids = torch.tensor([V.A_ID + "ACGT".index(c) for c in motif])
    known = (x_t >= V.A_ID) & (x_t <= V.T_ID)
    J = L - k + 1
    logw = torch.full((B, J), -math.inf, dtype=torch.float64)
    if J > 0:
        offs = torch.arange(J)[:, None] + torch.arange(k)[None]  # [J, k]
        kn = known[:, offs]  # [B, J, k]
        ok = (~kn | (x_t[:, offs] == m_ids[None, None])).all(-1)
        logw = torch.where(ok, math.log((1 - rho) / J) + kn.sum(-1).double() * math.log(4.0),
                           torch.tensor(-math.inf, dtype=torch.float64))
    logz = torch.logsumexp(torch.cat([torch.full((B, 1), math.log(rho), dtype=torch.float64), logw], 1), 1)
    w = torch.exp(logw - logz[:, None])  # [B, J] normalised motif weights
    probs = torch.zeros(B, L, 4, dtype=torch.float64)
    inside = torch.zeros(B, L, dtype=torch.float64)
    for i in range(k):  # motif start j covers l = j + i with base M[i]
        if J > 0:
            inside[:, i:i + J] += w
            probs[:, i:i + J, "ACGT".index(motif[i])] += w
    probs += ((1 - inside) / 4)[..., None]
    logits = torch.full((B, L, V.VOCAB_SIZE), -1e9, dtype=torch.float64)
    logits[..., _BASE_IDS] = torch.log(probs)
    return logits


def count(seq: str, motif: str) -> int:
    return sum(seq[j:j + len(motif)] == motif for j in range(len(seq) - len(motif) + 1))


def neg_log_p(seq: str, motif: str, rho: float = 0.5) -> float:
    """-log p(seq) from (1), nats."""
    L, k = len(seq), len(motif)
    return L * math.log(4.0) - math.log(rho + (1 - rho) * 4.0 ** k * count(seq, motif) / (L - k + 1))


def exact_llr(ref_seq: str, alt_seq: str, motif: str, rho: float = 0.5) -> float:
    """log p(alt) - log p(ref) = what llr = NELBO(ref) - NELBO(alt) estimates for the exact denoiser."""
    return neg_log_p(ref_seq, motif, rho) - neg_log_p(alt_seq, motif, rho)


def motif_model(motif: str = "TATAAGGC", rho: float = 0.5):
    return fake_model(partial(motif_denoiser, motif=motif, rho=rho))
