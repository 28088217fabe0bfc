"""What every backbone's dataclass config shares: plain-dict round trips."""

from __future__ import annotations

import copy
from dataclasses import asdict, fields
from typing import Any, Dict, Mapping

__all__ = ["ModelConfig"]


class ModelConfig:
    """Mixin for backbone config dataclasses: ``to_dict`` / ``from_dict`` (unknown fields are an error)."""

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (a deep copy: mutating it leaves the config alone)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """Config from a plain mapping of field values; ``ValueError`` names any unknown field."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        return cls(**copy.deepcopy(dict(d)))
