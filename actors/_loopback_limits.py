"""Rate limits for the loopback server: a provider's 429s and rate-limit headers, on demand.

`LoopbackLimits` enforces requests and tokens per window per model, as token buckets
(full at start, refilled continuously: the shape of the providers' own limits). An
admitted request's reply carries the limit headers of the provider it imitates; one
past the limit gets HTTP 429 with those headers and a ``retry-after`` (and
``retry-after-ms``) naming when capacity returns. Every admission and refusal is counted.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["LoopbackLimits"]


@dataclass
class _Bucket:
    limit: int
    window_s: float
    level: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.level = float(self.limit)

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.stamp) * self.limit / self.window_s)
        self.stamp = now

    def wait(self, need: float) -> float:
        return max(0.0, (need - self.level) * self.window_s / self.limit)


@dataclass
class LoopbackLimits:
    """Requests and tokens per window, per model; None: that dimension is unlimited."""

    requests: int | None = None
    tokens: int | None = None
    window_s: float = 60.0
    admitted: int = 0
    refused: int = 0
    #: Epoch seconds of each admitted request, for throughput checks.
    admitted_at: list[float] = field(default_factory=list)
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, path: str, body: dict[str, Any], step: Any, *, refuse: Any) -> Any:
        """Return `step` with the limit headers, or a 429 step when the model is over its limit.

        `step` is the loopback's `Step` (None: the default echo, left as it is when
        admitted); `refuse` makes one (the `Step` class: passed in, so no import cycle).
        """
        model = str(body.get("model"))
        usage = getattr(step, "usage", None) or (0, 0)
        needs = {"requests": 1.0, "tokens": float(sum(usage))}
        now = time.monotonic()
        with self._lock:
            buckets = self._for(model)
            for bucket in buckets.values():
                bucket.refill(now)
            wait = max(
                (b.wait(needs[dim]) for dim, b in buckets.items() if needs[dim]), default=0.0
            )
            if wait <= 0:
                for dim, bucket in buckets.items():
                    bucket.level -= needs[dim]
                self.admitted += 1
                self.admitted_at.append(time.time())
            else:
                self.refused += 1
            headers = _headers(path, buckets, wait)
        if wait > 0:
            return refuse(status=429, headers=headers)
        if step is None:
            return None
        return dataclasses.replace(step, headers={**step.headers, **headers})

    def _for(self, model: str) -> dict[str, _Bucket]:
        found = {}
        for dim, limit in (("requests", self.requests), ("tokens", self.tokens)):
            if limit is not None:
                found[dim] = self._buckets.setdefault((model, dim), _Bucket(limit, self.window_s))
        return found


def _headers(path: str, buckets: dict[str, _Bucket], wait: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    anthropic = path.endswith("/messages")
    for dim, b in buckets.items():
        remaining = max(0, math.floor(b.level))
        reset = b.wait(b.limit)
        if anthropic:
            at = datetime.fromtimestamp(time.time() + reset, tz=UTC).isoformat()
            headers |= {f"anthropic-ratelimit-{dim}-limit": str(b.limit),
                        f"anthropic-ratelimit-{dim}-remaining": str(remaining),
                        f"anthropic-ratelimit-{dim}-reset": at}  # fmt: skip
        else:
            headers |= {f"x-ratelimit-limit-{dim}": str(b.limit),
                        f"x-ratelimit-remaining-{dim}": str(remaining),
                        f"x-ratelimit-reset-{dim}": f"{round(reset * 1000)}ms"}  # fmt: skip
    if wait > 0:
        headers["retry-after"] = str(math.ceil(wait))
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return headers
