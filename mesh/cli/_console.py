"""The CLI's consoles, and its error line.

With no terminal (a pipe, a file, a Ray job's log that ``raymesh submit --follow``
shows) Rich assumes 80 columns and shortens table cells (``review/w…``), cutting
names nobody can widen afterwards. There, the width is unbounded instead: tables
keep their natural width, and lines wrap only where the text has newlines.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mesh.errors import MeshError
from mesh.security import redact

__all__ = ["console", "dash", "err", "fail", "out"]

#: Wider than any row the CLI prints; a table never grows past what its cells need.
_UNBOUNDED = 10_000


def console(*, stderr: bool = False) -> Console:
    """Return a console for stdout (or stderr): the terminal's width, or unbounded."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else _UNBOUNDED)


#: Results go to stdout; progress, warnings and errors to stderr.
out = console()
err = console(stderr=True)


def fail(exc: MeshError) -> NoReturn:
    """Print `exc`, secrets masked, as the command's error and exit with 1 (plugins too)."""
    err.print(f"[red]error:[/red] {escape(redact(str(exc)))}")  # "[agent=..]" is no markup
    raise typer.Exit(1)


def dash(value: Any) -> str:
    """A table cell: the value, or "-" where there is none."""
    return "-" if value is None else str(value)
