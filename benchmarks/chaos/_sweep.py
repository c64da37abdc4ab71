"""Looking for canaries: in texts, in files, and in the log lines this process renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

__all__ = ["Place", "log_lines", "sweep_files", "sweep_texts"]

#: What redaction puts where a secret was.
MASK = "[redacted]"
#: Files larger than this are read in pieces of this size (overlapping by a key's length).
_PIECE = 64 * 1024 * 1024
_OVERLAP = 256


@dataclass
class Place:
    """One place swept: how much was looked at, and what was found there.

    Attributes:
        name: Where, e.g. "Ray session logs".
        unit: What `items` counts ("files", "spans", ...).
        items: How many were looked at.
        size: Bytes looked at.
        hits: Items holding a canary.
        masked: Redaction marks seen: a canary (or another secret) was there, masked.
        found: Where the first hits were, for the reader of a failed run.
    """

    name: str
    unit: str
    items: int = 0
    size: int = 0
    hits: int = 0
    masked: int = 0
    found: list[str] = field(default_factory=list)

    def look(self, where: str, pieces: Iterable[bytes], canaries: Sequence[bytes]) -> bool:
        """Count one item, in pieces that overlap by a key's length; True if it holds a canary."""
        self.items += 1
        hit = False
        for piece in pieces:
            self.size += len(piece)
            self.masked += piece.count(MASK.encode())
            hit = hit or any(canary in piece for canary in canaries)
        if hit:
            self.hits += 1
            if len(self.found) < 5:
                self.found.append(where)
        return hit


def sweep_texts(place: Place, texts: Iterable[tuple[str, Any]], canaries: Sequence[str]) -> Place:
    """Look for `canaries` in each (where, value) item; values are rendered with ``repr``."""
    wanted = [c.encode() for c in canaries]
    for where, value in texts:
        text = value if isinstance(value, str) else repr(value)
        place.look(where, [text.encode(errors="replace")], wanted)
    return place


def sweep_files(place: Place, root: Path, canaries: Sequence[str]) -> Place:
    """Look for `canaries` in every file under `root` (files that vanish meanwhile are skipped)."""
    wanted = [c.encode() for c in canaries]
    for path in sorted(root.rglob("*")):
        with contextlib.suppress(OSError):
            if not path.is_file():
                continue
            with path.open("rb") as file:
                place.look(str(path.relative_to(root)), _pieces(file), wanted)
    return place


def _pieces(file: Any) -> Iterator[bytes]:
    # A log file can be large: read it in pieces, each starting with the end of the one
    # before, so a key across a boundary is still found (the 256 bytes counted twice).
    tail = b""
    while piece := file.read(_PIECE):
        yield tail + piece
        tail = piece[-_OVERLAP:]


@contextlib.contextmanager
def log_lines() -> Iterator[list[str]]:
    """Collect the log lines this process renders while the block runs, as they are written.

    The renderer, the last of structlog's processors, is wrapped in place (bound
    loggers hold that list), so what is collected is exactly what goes out: after
    redaction, at the configured level.
    """
    lines: list[str] = []
    processors = structlog.get_config()["processors"]
    renderer = processors[-1]

    def tee(logger: Any, method: str, event: Any) -> Any:
        rendered = renderer(logger, method, event)
        lines.append(str(rendered))
        return rendered

    processors[-1] = tee
    try:
        yield lines
    finally:
        processors[-1] = renderer
