"""Finding and importing the optional kernel packages (mamba-ssm, causal-conv1d, triton, numba).

:func:`package_available` asks :func:`importlib.util.find_spec` (nothing is imported);
:func:`import_optional` imports one function on first use and answers ``False`` when the package is
missing or broken (an ABI mismatch, a build without the extension), so the caller falls back silently.
:class:`BackendUnavailableError` is what an explicitly requested kernel that cannot run here raises.
"""

from __future__ import annotations

import importlib
import importlib.util

from genodiff.errors import InputError

__all__ = ["package_available", "import_optional", "BackendUnavailableError"]


class BackendUnavailableError(InputError, RuntimeError):
    """An explicitly requested kernel (``backend=`` / ``ops.scan_backend``) cannot run here: its package is
    missing or the tensors are on the wrong device. A RuntimeError for library callers; an InputError, so
    the CLI prints it as one ``genodiff: error:`` line."""


def package_available(name: str) -> bool:
    """True when the top-level package ``name`` is importable (checked with find_spec; nothing is imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_optional(package: str, module: str, attr: str):
    """``module.attr`` when ``package`` is installed and imports cleanly, else ``False``."""
    if not package_available(package):
        return False
    try:  # pragma: no cover - CUDA only
        return getattr(importlib.import_module(module), attr)
    except Exception:  # broken build / ABI mismatch: fall back silently
        return False
