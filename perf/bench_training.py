"""Training throughput on CPU (tokens/s) and the share of time spent waiting for data.

    python perf/bench_training.py [--steps 12] [--batch 8] [--length 1024] [--models tiny,paper] [--threads 1]

Runs the real training path (``genodiff.tasks.train``: Lightning, MDLM objective, EMA, AdamW) on the
shared hg38 chr2 slice (or the demo genome when ../shared is absent) and times every optimizer step with
a callback: ``data_wait`` is the time between the end of one training batch and the start of the next
(DataLoader fetch + collate + Lightning bookkeeping), ``step`` the forward/backward/optimizer time.
The first two steps (numba compilation, allocator warm-up) are excluded. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from genodiff.config import compose_config
from genodiff.tasks import train

SHARED = Path(os.environ.get("GENODIFF_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
MODELS = {
    "tiny": ["model=caduceus_tiny"],
    "paper": ["model=caduceus_ph"],
}


class StepTimer(L.Callback):
    def __init__(self):
        self.batch_start, self.batch_end, self.data_wait, self.step = None, None, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        now = time.perf_counter()
        if self.batch_end is not None:
            self.data_wait.append(now - self.batch_end)
        self.batch_start = now

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.batch_end = time.perf_counter()
        self.step.append(self.batch_end - self.batch_start)


def measure(model: str, steps: int, batch: int, length: int, run_dir: Path) -> dict:
    chr2 = SHARED / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
    data = ["data=local", f"data.fasta={chr2}"] if chr2.is_file() else ["data=demo"]
    overrides = [*MODELS[model], *data, f"data.window={length}", f"global_batch_size={batch}",
                 f"max_per_device_batch_size={batch}", f"max_steps={steps}", "val_every_n_steps=0",
                 f"checkpoint_every_n_steps={steps}", "loggers=[]", "progress=false", "export=false",
                 f"output_dir={run_dir}", "trainer=cpu"]
    cfg = compose_config("pretrain", overrides)
    timer = StepTimer()
    train.run(cfg, callbacks=[timer])
    step = timer.step[2:]
    wait = timer.data_wait[1:]  # wait before step i (i >= 2)
    step_s, wait_s = sum(step) / len(step), sum(wait) / len(wait)
    return {"model": model, "batch": batch, "length": length, "steps_timed": len(step),
            "seconds_per_step": round(step_s, 4), "data_wait_seconds_per_step": round(wait_s, 5),
            "tokens_per_second": round(batch * length / (step_s + wait_s), 1),
            "data_share_percent": round(100 * wait_s / (step_s + wait_s), 2),
            "data": "chr2_slice" if chr2.is_file() else "demo"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--models", default="tiny,paper")
    parser.add_argument("--threads", type=int, default=None, help="torch (and numba) threads; default: torch's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GENODIFF_DATA", str(Path(tmp) / "cache"))
        for model in args.models.split(","):
            results.append(measure(model, args.steps, args.batch, args.length, Path(tmp) / model))
    print(json.dumps({"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                  "python": platform.python_version(), "torch": torch.__version__},
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
