"""The precision kernels and losses compute in: float32 for half types, float64 for float64."""

from __future__ import annotations

import torch

__all__ = ["compute_dtype"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64, float32 otherwise (half types are upcast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
