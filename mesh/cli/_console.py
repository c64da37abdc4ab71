"""The CLI's consoles: full width where no terminal says how wide to be.

With no terminal (a pipe, a file, a Ray job's log that ``raymesh submit --follow``
shows) Rich assumes 80 columns and shortens table cells (``review/w…``), cutting
names nobody can widen afterwards. There, the width is unbounded instead: tables
keep their natural width, and lines wrap only where the text has newlines.
"""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["console"]

#: Wider than any row the CLI prints; a table never grows past what its cells need.
_UNBOUNDED = 10_000


def console(*, stderr: bool = False) -> Console:
    """Return a console for stdout (or stderr): the terminal's width, or unbounded."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else _UNBOUNDED)
