"""What ``genodiff serve`` serves and how much one request may ask for (the keys of ``configs/serve.yaml``).

:func:`serve_settings` turns the plain ``serve`` config (``genodiff.config.to_plain`` of it) into a frozen
:class:`ServeSettings`; every bad value is one :class:`~genodiff.errors.InputError` line naming its key.
Sizes are in bp, bytes are given as MB (10^6 bytes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from genodiff.errors import InputError


@dataclass(frozen=True)
class Limits:
    """Per-request caps; a request over any of them is refused with one message before any work starts."""

    max_length: int = 4096          #: bp per generated, infilled or scored sequence, and per variant window
    max_count: int = 32             #: sequences generated per request (templates x number)
    max_records: int = 500          #: FASTA records scored / VCF records read per request
    max_steps: int = 512            #: sampler steps
    max_draws: int = 128            #: scoring draws per sequence or variant
    max_upload_mb: float = 10.0     #: per uploaded file or pasted text, in MB (10^6 bytes)
    max_analyze_mb: float = 50.0    #: size on disk of a data-folder FASTA the Analyze tab reads, in MB

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_analyze_bytes(self) -> int:
        return int(self.max_analyze_mb * 1_000_000)


@dataclass(frozen=True)
class ServeSettings:
    """The server: model, data folder, address, queue and limits.

    checkpoint: run or export folder (None: the bundled default model).
    classifier: a noise-aware classifier export (``genodiff finetune noisy_classifier_<task>``) the Design tab
    may guide with (None: classifier-free guidance only, from a class-conditional ``checkpoint``).
    data_dir: the only server folder the browser may pick files from (genome / reference FASTA); None: none.
    host / port: where to listen (``127.0.0.1``: this machine only).
    concurrency: jobs that run at once; further requests wait in the queue (at most ``max_queue``).
    results_ttl_minutes: request folders older than this are removed (gradio keeps its own copy of results
    for the page; ``delete_cache`` clears that after the same time).
    """

    checkpoint: str | None = None
    classifier: str | None = None
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    concurrency: int = 1
    max_queue: int = 64
    device: str = "auto"
    num_threads: int | None = None
    results_ttl_minutes: float = 60.0
    limits: Limits = field(default_factory=Limits)


def _int(plain: Mapping[str, Any], key: str, prefix: str, lo: int, default: int | None) -> int | None:
    value = plain.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InputError(f"{prefix}{key}: must be an integer >= {lo}, got {value!r}")
    return value


def _number(plain: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
    value = plain.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InputError(f"{prefix}{key}: must be a number > 0, got {value!r}")
    return float(value)


def _limits(plain: Mapping[str, Any] | None) -> Limits:
    plain = dict(plain or {})
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(plain) - known)
    if unknown:
        raise InputError(f"limits.{unknown[0]}: unknown limit (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in fields(Limits):
        if f.name in ("max_upload_mb", "max_analyze_mb"):
            values[f.name] = _number(plain, f.name, "limits.", f.default)
        else:
            values[f.name] = _int(plain, f.name, "limits.", 1, f.default)
    return Limits(**values)


def serve_settings(plain: Mapping[str, Any]) -> ServeSettings:
    """A :class:`ServeSettings` from the plain ``serve`` config (unknown keys such as ``job`` are ignored)."""
    data_dir = plain.get("data_dir")
    if data_dir not in (None, ""):
        data_dir = Path(str(data_dir)).expanduser()
        if not data_dir.is_dir():
            raise InputError(f"data_dir: {data_dir}: not a folder")
        data_dir = data_dir.resolve()
    else:
        data_dir = None
    host = str(plain.get("host") or "127.0.0.1")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"host: {host!r} is not an IP address (127.0.0.1: this machine only; "
                             "0.0.0.0: every network interface)") from None
    port = _int(plain, "port", "", 1, 7860)
    if port > 65535:
        raise InputError(f"port: must be in 1..65535, got {port}")
    device = str(plain.get("device") or "auto")
    checkpoint, classifier = plain.get("checkpoint"), plain.get("classifier")
    return ServeSettings(
        checkpoint=None if checkpoint in (None, "") else str(checkpoint),
        classifier=None if classifier in (None, "") else str(classifier), data_dir=data_dir, host=host, port=port,
        concurrency=_int(plain, "concurrency", "", 1, 1), max_queue=_int(plain, "max_queue", "", 1, 64),
        device=device, num_threads=_int(plain, "num_threads", "", 1, None),
        results_ttl_minutes=_number(plain, "results_ttl_minutes", "", 60.0), limits=_limits(plain.get("limits")))
