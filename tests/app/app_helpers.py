"""Plain helpers of the app tests: a tiny exported model and small FASTA files (a module of its own, not
``conftest``: several test folders' conftests would shadow each other)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import torch

from genodiff.app.settings import ServeSettings, serve_settings
from genodiff.cli import main
from genodiff.interop.export import save_export
from genodiff.models.registry import build_model

TINY_MODEL = {"name": "caduceus", "d_model": 16, "n_layer": 1, "rcps": True}
MDLM = {"name": "mdlm", "schedule": {"name": "loglinear"}, "time": "continuous", "num_timesteps": 1000,
        "time_conditioning": False, "antithetic": True, "sampling_eps": 1.0e-3}


def tiny_export(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny Caduceus-PS + MDLM export (as ``genodiff pretrain`` writes one)."""
    torch.manual_seed(seed)
    spec = dict(TINY_MODEL)
    model = build_model(spec.pop("name"), **spec)
    return save_export(model, {"model": dict(TINY_MODEL), "objective": dict(MDLM), "vocab": "dna",
                               "training": {"job": "test"}}, folder)


def tiny_design_exports(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """(class-conditional tiny Caduceus-PS + MDLM export, noise-aware tiny classifier export), classes
    ``background`` and ``promoter``, randomly initialised (as ``genodiff finetune conditional_<task>`` /
    ``noisy_classifier_<task>`` write them)."""
    torch.manual_seed(seed)
    classes = {"classes": ["background", "promoter"], "null_label": 2}
    cond_spec = {**TINY_MODEL, "num_classes": 2}
    spec = dict(cond_spec)
    model = build_model(spec.pop("name"), **spec)
    with torch.no_grad():  # off the zero-initialised label embeddings: the class must change the output
        for name, p in model.named_parameters():
            if "label" in name:
                p.add_(0.5 * torch.randn_like(p))
    cond = save_export(model, {"model": cond_spec, "objective": dict(MDLM), "vocab": "dna",
                               "condition": classes, "training": {"job": "test"}}, folder / "conditional")
    clf_spec = {"name": "sequence_classifier", "num_classes": 2, "backbone": dict(TINY_MODEL)}
    spec = dict(clf_spec)
    classifier = build_model(spec.pop("name"), **spec)
    clf = save_export(classifier, {"model": clf_spec, "objective": dict(MDLM), "vocab": "dna",
                                   "classifier": {"classes": classes["classes"]}, "training": {"job": "test"}},
                      folder / "classifier")
    return cond, clf


def random_dna(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


def write_fasta(path: Path, records: dict[str, str], width: int = 60) -> Path:
    path.write_text("".join(f">{k}\n" + "".join(s[i:i + width] + "\n" for i in range(0, len(s), width))
                            for k, s in records.items()))
    return path


def read_fasta_text(text: str) -> dict[str, tuple[str, str]]:
    """``{id: (description, sequence)}`` of FASTA text."""
    out: dict[str, tuple[str, str]] = {}
    name = None
    for line in text.splitlines():
        if line.startswith(">"):
            head = line[1:].split(" ", 1)
            name = head[0]
            out[name] = (head[1] if len(head) > 1 else "", "")
        elif name is not None:
            out[name] = (out[name][0], out[name][1] + line.strip())
    return out


def make_settings(export: Path, data_dir: Path | None = None, **extra) -> ServeSettings:
    """Server settings on ``export`` with one torch thread per job."""
    plain = {"checkpoint": str(export), "data_dir": None if data_dir is None else str(data_dir), "num_threads": 1,
             **extra}
    return serve_settings(plain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(workdir: Path, *args: str) -> Path:
    """``genodiff <args> output_dir=<new folder>`` in this process (Hydra's run folder under ``workdir``);
    returns the output folder. Call with the working folder changed to ``workdir`` (monkeypatch.chdir)."""
    n = len(list(workdir.glob("cli-*")))
    out = workdir / f"cli-{n}"
    code = main([*args, "progress=false", "num_threads=1", f"output_dir={out}"])
    assert code == 0, f"genodiff {' '.join(args)} exited {code}"
    return out
