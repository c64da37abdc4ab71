"""One line of the chaos table, and how the scenarios format their values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Figure", "Figures", "as_ms", "as_s", "as_share", "as_times", "ended_typed"]


@dataclass(frozen=True)
class Figure:
    """One line of the table: what was measured, its value, and the target if there is one."""

    scenario: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None


class Figures(Protocol):
    """What a scenario returns: a dataclass of raw figures that renders its table lines."""

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the table."""
        ...


def as_ms(value: float | None, *, digits: int = 0) -> str:
    return "none reached" if value is None else f"{value:.{digits}f} ms"


def as_s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def as_times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def as_share(count: int, total: int) -> str:
    return f"{count / total:.1%} ({count:,})" if total else "0"


def ended_typed(name: str, asks: int, hung: int, untyped: int) -> Figure:
    """The line every ask-driving scenario shares: all asks ended in a reply or typed error."""
    ended = as_share(asks - hung - untyped, asks)
    return Figure(name, "asks ended in a reply or a typed error", ended, "100%", not hung + untyped)
