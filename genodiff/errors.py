"""User-facing errors.

Any problem with user input (a file, a line in it, a config key, a command-line value) raises
:class:`InputError` with ONE line that names the file/line/key and what is wrong, e.g.
``"genome.fa line 12: non-DNA character 'X' in record chr1"``. The CLI prints it as
``genodiff: error: <message>`` on stderr and exits with status 2, without a traceback.
Code that writes output files must write to a temporary name and rename atomically only after
all input was validated, so a failed run leaves no partial output.

A model that produces NaN or infinite values raises :class:`NonFiniteError` (not user input, but shown the
same way: one line, exit status 2, no output files).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; ``str(error)`` is a single human-readable line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


class DownloadError(InputError):
    """A download failed or a downloaded file did not verify (message says how to place it by hand)."""


class NonFiniteError(FloatingPointError):
    """A model produced NaN or infinite values (logits while sampling, a NELBO while scoring): the run stops
    with one line naming where (sampler or estimator, step or draw) instead of writing wrong numbers.
    The CLI prints it like :class:`InputError` (``genodiff: error: ...``, exit status 2)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))
