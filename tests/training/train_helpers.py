"""Helpers for the training tests: a tiny, fast training config composed like the CLI does."""

from __future__ import annotations

from pathlib import Path

from genodiff.config import compose_config


def tiny_config(job: str, run_dir: Path, *overrides: str, preset: str = "demo"):
    """``genodiff <job> <preset>`` with a 128-bp window, batch 4 and a handful of steps."""
    base = [
        f"experiment/{job}={preset}", "data.window=128", "data.max_eval_windows=4", "global_batch_size=4",
        "max_per_device_batch_size=4", "max_steps=6", "val_every_n_steps=3", "checkpoint_every_n_steps=2",
        "loggers=[csv]", "progress=false", f"output_dir={run_dir}", "model.d_model=16", "optim.warmup_steps=2",
    ]
    return compose_config(job, base + list(overrides))
