"""Global batch size -> per-device micro-batch and gradient accumulation.

The paper's recipes state a *global* batch (sequences per optimizer step over all devices). The same
config must run on one CPU or on many GPUs, so the split is computed in code:
``global_batch = per_device_batch * world_size * accumulate_grad_batches``.
"""

from __future__ import annotations

from dataclasses import dataclass

from genodiff.errors import InputError


@dataclass(frozen=True)
class BatchPlan:
    global_batch_size: int
    world_size: int
    per_device_batch_size: int
    accumulate_grad_batches: int


def plan_batches(global_batch_size: int, world_size: int, max_per_device_batch_size: int) -> BatchPlan:
    """Largest per-device batch <= ``max_per_device_batch_size`` that divides the global batch exactly.

    Raises InputError when the global batch is not a multiple of the world size.
    """
    if global_batch_size < 1 or world_size < 1 or max_per_device_batch_size < 1:
        raise InputError(
            f"batch sizes must be positive (global_batch_size={global_batch_size}, world_size={world_size}, "
            f"max per-device batch={max_per_device_batch_size})"
        )
    if global_batch_size % world_size:
        raise InputError(
            f"global_batch_size={global_batch_size} is not divisible by the number of devices ({world_size})"
        )
    per_world = global_batch_size // world_size
    for per_device in range(min(max_per_device_batch_size, per_world), 0, -1):
        if per_world % per_device == 0:
            return BatchPlan(global_batch_size, world_size, per_device, per_world // per_device)
    raise AssertionError("unreachable: per_device=1 always divides")
