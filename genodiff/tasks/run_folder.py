"""The run folder of a job: where every job writes its results.

``output_dir=<folder>`` when given; else Hydra's run folder (``outputs/<job>/<date>_<time>``, see the
``hydra.run.dir`` of the job configs); outside a Hydra run (notebooks, tests, scripts) the same layout
under the working folder.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def output_dir(cfg: DictConfig, job: str = "run") -> Path:
    """The folder a job writes into (not created here); ``job`` names it when the config has no ``job`` key."""
    if cfg.get("output_dir"):
        return Path(str(cfg.output_dir)).expanduser()
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / str(cfg.get("job") or job) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
