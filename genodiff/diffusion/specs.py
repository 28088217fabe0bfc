"""Plain specs -> configs: how schedules, objectives and samplers read ``{"name": ..., **fields}`` dicts.

* :func:`split_spec` -- a name, a mapping ``{key: name, **args}`` or None, merged with keyword overrides,
  into ``(name, args)``; an unknown name is a ``ValueError`` listing the known ones.
* :func:`config_from` -- a config dataclass from an instance, a mapping or None plus keyword overrides;
  an unknown field is a ``ValueError`` naming it.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Collection, Mapping

__all__ = ["split_spec", "config_from"]


def split_spec(spec: "str | Mapping[str, Any] | None", kwargs: Mapping[str, Any], *, default: str,
               known: Collection[str], what: str, key: str = "name") -> tuple[str, dict]:
    """``(name, args)`` of ``spec`` (a name, a mapping or None) updated by ``kwargs``; ``name`` defaults to
    ``default`` and must be in ``known`` (else ``ValueError: unknown <what> ...``)."""
    if spec is None:
        spec = {}
    if isinstance(spec, str):
        spec = {key: spec}
    args = {**dict(spec), **kwargs}
    name = args.pop(key, default)
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; choose from {sorted(known)}")
    return name, args


def config_from(cls, spec: Any, kwargs: Mapping[str, Any]):
    """``cls(**fields)`` from ``spec`` (a ``cls`` instance, a mapping or None) updated by ``kwargs``."""
    if spec is None:
        spec = {}
    if isinstance(spec, cls):
        spec = asdict(spec)
    args = {**dict(spec), **kwargs}
    bad = set(args) - {f.name for f in fields(cls)}
    if bad:
        raise ValueError(f"{cls.__name__} does not take {sorted(bad)}")
    return cls(**args)
