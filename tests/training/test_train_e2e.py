"""End-to-end training: every objective trains, exports and evaluates; resume after SIGKILL is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genodiff.tasks import evaluate, train
from genodiff.interop.export import load_export
from train_helpers import tiny_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("objective", "model"),
    [("mdlm", None), ("ar", "mamba_ar_tiny"), ("sedd", None), ("d3pm", None), ("mlm", None)],
)
def test_every_objective_trains_and_exports(tmp_path, objective, model):
    overrides = [f"objective={objective}"] + ([f"model={model}", "model.d_model=16"] if model else [])
    cfg = tiny_config("pretrain", tmp_path / "run", *overrides)
    summary = train.run(cfg)
    assert summary["global_step"] == 6
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["metrics"].values())
    exported = load_export(summary["export"])
    assert exported.spec["objective"]["name"] == objective
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "logs" / "metrics.csv").is_file()


def test_export_holds_ema_weights_and_evaluate_reads_it(tmp_path):
    cfg = tiny_config("finetune", tmp_path / "run", "ema_decay=0.5")
    summary = train.run(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    exported = load_export(summary["export"])
    for name, param in exported.model.named_parameters():
        assert torch.equal(param.detach(), ckpt["ema"]["shadow"][name].to(param.dtype)), name
    eval_cfg = tiny_config("finetune", tmp_path / "unused")  # reuse the data section
    from omegaconf import OmegaConf

    cfg_eval = OmegaConf.create({
        "data": OmegaConf.to_container(eval_cfg.data), "checkpoints": [str(tmp_path / "run")], "split": "test",
        "num_samples": 2, "method": "auto", "batch_size": 4, "max_windows": 4, "markov_orders": [0, 2],
        "markov_alpha": 1.0, "markov_max_train_bases": 200_000, "seed": 0, "device": "cpu",
        "output_dir": str(tmp_path / "eval"),
    })
    results = evaluate.run(cfg_eval)
    model_row = results["rows"][0]
    assert 1.0 < model_row["bits_per_base"] < 3.0 and model_row["bits_per_base_stderr"] > 0
    assert {r["model"] for r in results["rows"][1:]} == {"Markov order 0", "Markov order 2"}
    assert (tmp_path / "eval" / "report.md").read_text().count("Markov order") >= 2
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["rows"][0]["estimator"] == "num_masked"


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import lightning as L
from genodiff.tasks import train
from train_helpers import tiny_config

class KillAt(L.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if {kill_at} and trainer.global_step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

cfg = tiny_config("pretrain", {run_dir!r}, "max_steps=8", "resume=auto", "ema_decay=0.9", "global_batch_size=4",
                  "max_per_device_batch_size=2")
train.run(cfg, callbacks=[KillAt()])
"""


def _train_in_subprocess(run_dir: Path, kill_at: int) -> int:
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), kill_at=kill_at, run_dir=str(run_dir))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=600).returncode


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    assert _train_in_subprocess(tmp_path / "straight", kill_at=0) == 0
    assert _train_in_subprocess(tmp_path / "killed", kill_at=5) == -signal.SIGKILL  # after the step-4 checkpoint
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert _train_in_subprocess(tmp_path / "killed", kill_at=0) == 0
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert straight["global_step"] == resumed["global_step"] == 8
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for key, value in straight["ema"]["shadow"].items():
        assert torch.equal(value, resumed["ema"]["shadow"][key]), key


def test_non_finite_loss_stops_with_clear_error_and_keeps_checkpoint(tmp_path, monkeypatch):
    from genodiff.training import module as module_lib

    original = module_lib.DiffusionLitModule._objective_loss

    def poisoned(self, batch, generator, global_batch=None, offset=0):
        out = original(self, batch, generator, global_batch, offset)
        if self.training and self.global_step >= 3:
            out.nelbo_per_seq = out.nelbo_per_seq * float("nan")
        return out

    monkeypatch.setattr(module_lib.DiffusionLitModule, "_objective_loss", poisoned)
    cfg = tiny_config("pretrain", tmp_path / "run", "val_every_n_steps=0")
    with pytest.raises(module_lib.NonFiniteLossError, match="non-finite training loss .* at step 3"):
        train.run(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_ddp_spawn_on_two_cpu_processes(tmp_path):
    cfg = tiny_config("pretrain", tmp_path / "run", "trainer=ddp_cpu", "global_batch_size=8", "max_steps=4",
                      "val_every_n_steps=2")
    summary = train.run(cfg)
    assert summary["batch_plan"] == {"global": 8, "per_device": 4, "accumulate": 1, "world_size": 2}
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    assert load_export(summary["export"]).spec["training"]["global_step"] == 4
