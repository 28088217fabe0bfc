"""Training on text: the shared training task handles ``data.kind: text`` itself.

Kept as an entry point for notebooks and tests written against it; :func:`genodiff.tasks.train.run` picks
the :class:`~genodiff.training.text_datamodule.TextDataModule` from the config and exports the tokenizer.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from genodiff.tasks import train


def run(cfg: DictConfig, callbacks=()) -> dict[str, Any]:
    """Train on text or DNA (whatever ``cfg.data`` describes); see :func:`genodiff.tasks.train.run`."""
    return train.run(cfg, callbacks)
