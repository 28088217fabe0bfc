"""Tiny, randomly initialised genodiff exports for the bundled-model tests (no training, milliseconds each), and a
fixture-style helper that points genodiff's bundled-models folder at a temporary one."""

from __future__ import annotations

from pathlib import Path

import torch

from genodiff.interop import export as E
from genodiff.models.registry import build_model

#: configs/model/caduceus_tiny.yaml with d_model 8 and one layer (tests compose runs with TINY_MODEL)
MODEL_SPEC = {"name": "caduceus", "d_model": 8, "n_layer": 1, "rcps": True, "fused_add_norm": True}
TINY_MODEL = ["model=caduceus_tiny", "model.d_model=8", "model.n_layer=1"]
OBJECTIVE_SPEC = {"name": "mdlm", "schedule": {"name": "loglinear"}, "time": "continuous", "num_timesteps": 1000,
                  "time_conditioning": False, "antithetic": True, "sampling_eps": 1.0e-3}


def make_export(folder: Path, seed: int = 0, global_step: int = 7) -> tuple[Path, torch.nn.Module]:
    """A tiny Caduceus-PS + MDLM export at ``folder`` with weights drawn from ``seed`` (its recorded training seed
    is 0, as in the default configs); returns (folder, model)."""
    torch.manual_seed(seed)
    spec = dict(MODEL_SPEC)
    model = build_model(spec.pop("name"), **spec).eval()
    with torch.no_grad():  # move every parameter off its init so two seeds surely differ everywhere
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    E.save_export(model, {"model": dict(MODEL_SPEC), "objective": dict(OBJECTIVE_SPEC), "vocab": "dna",
                          "training": {"job": "pretrain", "global_step": global_step, "seed": 0, "ema": True,
                                       "init": None}}, folder)
    return folder, model


def use_bundled_dir(monkeypatch, root: Path) -> Path:
    """Point ``bundled_models_dir()`` (in export.py and in the models task) at ``root``."""
    import genodiff.tasks.models as M

    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(E, "bundled_models_dir", lambda: root)
    monkeypatch.setattr(M, "bundled_models_dir", lambda: root)
    return root
