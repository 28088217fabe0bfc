"""Batch planning, EMA and atomic checkpoint writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from genodiff.errors import InputError
from genodiff.training.batching import plan_batches
from genodiff.training.checkpoint_io import atomic_torch_save
from genodiff.training.ema import ParameterEMA


@pytest.mark.parametrize(
    ("global_batch", "world", "max_per_device", "per_device", "accumulate"),
    [(512, 8, 64, 64, 1), (512, 1, 32, 32, 16), (48, 2, 10, 8, 3), (7, 1, 4, 1, 7), (8, 1, 100, 8, 1)],
)
def test_plan_batches(global_batch, world, max_per_device, per_device, accumulate):
    plan = plan_batches(global_batch, world, max_per_device)
    assert (plan.per_device_batch_size, plan.accumulate_grad_batches) == (per_device, accumulate)
    assert plan.per_device_batch_size * plan.world_size * plan.accumulate_grad_batches == global_batch


def test_plan_batches_rejects_indivisible_world():
    with pytest.raises(InputError, match="not divisible"):
        plan_batches(10, 4, 8)


def test_ema_matches_closed_form_and_round_trips():
    model = nn.Linear(3, 2)
    ema = ParameterEMA(model, decay=0.9)
    start = model.weight.detach().clone()
    values = []
    for step in range(5):
        with torch.no_grad():
            model.weight.fill_(float(step))
        values.append(float(step))
        ema.update(model)
    expected = start * 0.9**5 + sum(0.1 * 0.9 ** (4 - i) * v for i, v in enumerate(values))
    assert torch.allclose(ema.shadow["weight"], expected, atol=1e-6)
    with ema.swapped_in(model):
        assert torch.allclose(model.weight, expected, atol=1e-6)
    assert torch.all(model.weight == 4.0)
    clone = ParameterEMA(nn.Linear(3, 2), decay=0.5)
    clone.load_state_dict(ema.state_dict())
    assert clone.decay == 0.9 and clone.num_updates == 5
    assert torch.equal(clone.shadow["weight"], ema.shadow["weight"])


def test_atomic_save_survives_sigkill_during_write(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)
    script = textwrap.dedent(f"""
        import os, signal, torch
        from genodiff.training import checkpoint_io
        real_save = torch.save
        def dying_save(obj, handle):
            handle.write(b"partial bytes")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint_io.torch.save = dying_save
        checkpoint_io.atomic_torch_save({{"step": 2}}, {str(target)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert torch.load(target, weights_only=True) == {"step": 1}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert all(name.endswith(".tmp") for name in leftovers)  # stale temp files are harmless, never read
