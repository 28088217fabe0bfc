"""Helpers shared by the fused-mixer tests (tests/ops/test_mixer_*.py)."""

from __future__ import annotations

import pytest
import torch

from genodiff.models.mamba import Mamba


class CallCounter:
    """How often a patched function was called (``calls``)."""

    def __init__(self):
        self.calls = 0


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(module, name)`` wraps ``module.name`` for the test and returns its :class:`CallCounter`."""

    def install(module, name: str) -> CallCounter:
        counter, real = CallCounter(), getattr(module, name)

        def wrapper(*args, **kwargs):
            counter.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
        return counter

    return install


@pytest.fixture
def perturbed_mamba():
    """``perturbed_mamba(d_model, d_state, d_conv, conv_bias, seed, dt_weight_scale=1.0)``: a Mamba mixer moved
    away from its structured init (A, D, dt bias, conv bias; ``dt_proj.weight`` scaled), so that a wrong index or
    a dropped term shows in its outputs and gradients."""
    return _perturbed_mamba


def _perturbed_mamba(d_model: int, d_state: int, d_conv: int, conv_bias: bool, seed: int,
                     dt_weight_scale: float = 1.0) -> Mamba:
    torch.manual_seed(seed)
    m = Mamba(d_model, d_state=d_state, d_conv=d_conv, conv_bias=conv_bias)
    with torch.no_grad():
        m.A_log.add_(torch.randn_like(m.A_log) * 0.5)
        m.D.normal_()
        m.dt_proj.bias.add_(torch.randn_like(m.dt_proj.bias))
        m.dt_proj.weight.mul_(dt_weight_scale)
        if conv_bias:
            m.conv1d.bias.normal_()
    return m
