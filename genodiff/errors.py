"""User-facing errors.

Any problem with user input (a file, a line in it, a config key, a command-line value) raises
:class:`InputError` with ONE line that names the file/line/key and what is wrong, e.g.
``"genome.fa line 12: non-DNA character 'X' in record chr1"``. The CLI prints it as
``genodiff: error: <message>`` on stderr and exits with status 2, without a traceback.
Code that writes output files must write to a temporary name and rename atomically only after
all input was validated, so a failed run leaves no partial output.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; ``str(error)`` is a single human-readable line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


class DownloadError(InputError):
    """A download failed or a downloaded file did not verify (message says how to place it by hand)."""
