"""Objectives and vocabularies from their plain specs (the ``objective`` / ``vocab`` entries of a training
config or of an export's ``genodiff.json``), with one-line :class:`InputError` messages for bad specs."""

from __future__ import annotations

from typing import Any

from genodiff.diffusion.mlm import MLMObjective
from genodiff.diffusion.objectives import make_objective
from genodiff.diffusion.plaid import PlaidObjective
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError


def make_vocab(spec: Any) -> DiffusionVocab:
    """``"dna"`` (A/C/G/T outputs), ``"dna_n"`` (also N), or a dict of :meth:`DiffusionVocab.generic` arguments."""
    if spec in (None, "dna"):
        return DiffusionVocab.dna()
    if spec == "dna_n":
        return DiffusionVocab.dna(include_n=True)
    if isinstance(spec, dict) or hasattr(spec, "items"):
        return DiffusionVocab.generic(**dict(spec))
    raise InputError(f"vocab: unknown vocabulary '{spec}' (use dna, dna_n or a dict)")


def build_objective(spec: dict, vocab: DiffusionVocab):
    """The objective ``{"name": "mdlm"|"ar"|"sedd"|"d3pm"|"mlm"|"plaid", **config}`` over ``vocab``."""
    spec = dict(spec)
    if spec.get("name") == "mlm":
        spec.pop("name")
        return MLMObjective(spec, vocab=vocab)
    try:
        if spec.get("name") == "plaid":  # an nn.Module: learned embeddings and schedule endpoints
            spec.pop("name")
            return PlaidObjective(spec, vocab=vocab)
        return make_objective(spec, vocab=vocab)
    except (ValueError, TypeError) as exc:
        raise InputError(f"objective: {exc}") from None
