"""The providers' rate-limit response headers, read into one shape.

OpenAI sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (resets as
durations: ``1s``, ``6m0s``, ``20ms``); Anthropic sends
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (resets as RFC 3339
times). Anything unparseable is ignored: a header never breaks a call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["LimitReport", "read_headers"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class LimitReport:
    """What the provider said about one dimension (requests or tokens) of the limit."""

    limit: int | None = None
    remaining: int | None = None
    #: Seconds until `remaining` is back to `limit`.
    reset_s: float | None = None
    #: Epoch seconds when the headers were read (None: just now), so that a report
    #: applied late credits the refill since.
    at: float | None = field(default=None, compare=False)


def read_headers(headers: Mapping[str, str]) -> dict[str, LimitReport]:
    """Return ``{"requests": ..., "tokens": ...}`` for the dimensions the headers name."""
    lower = {k.lower(): v for k, v in headers.items()}
    now = time.time()
    found: dict[str, LimitReport] = {}
    for dim in ("requests", "tokens"):
        names = (
            (
                f"x-ratelimit-limit-{dim}",
                f"x-ratelimit-remaining-{dim}",
                f"x-ratelimit-reset-{dim}",
            ),
            (
                f"anthropic-ratelimit-{dim}-limit",
                f"anthropic-ratelimit-{dim}-remaining",
                f"anthropic-ratelimit-{dim}-reset",
            ),
        )
        for limit, remaining, reset in names:
            report = LimitReport(
                _int(lower.get(limit)), _int(lower.get(remaining)), _reset(lower.get(reset)), now
            )
            if report != LimitReport():
                found[dim] = report
                break
    return found


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _reset(value: str | None) -> float | None:
    if not value:
        return None
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value.strip():
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        return max(0.0, datetime.fromisoformat(value).timestamp() - time.time())
    except ValueError:
        return None
