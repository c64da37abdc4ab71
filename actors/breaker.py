"""A circuit breaker per provider and model, so a failing model is skipped at once.

Without it every caller of a dead model would spend its whole deadline on retries before
falling back. The breaker is a small state machine::

    closed ──(N consecutive failures)──► open ──(cool-down elapsed)──► half-open
      ▲                                   ▲                               │
      └────────(probe succeeds)───────────┼───────────────────────────────┤
                                          └────────(probe fails)──────────┘

While open, calls fail fast with `ModelUnavailableError`; in half-open exactly one call
(the probe) goes through and the others still fail fast.

Breakers are per process (per agent actor): each agent learns about a model's health
from its own calls, with no shared state on the data path.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from pydantic import BaseModel

from actors.errors import ModelUnavailableError

__all__ = ["BreakerState", "BreakerStats", "CircuitBreaker", "breaker_for", "reset_breakers"]


class BreakerState(enum.StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerStats(BaseModel):
    """A snapshot of a breaker."""

    model: str
    state: BreakerState
    consecutive_failures: int
    opened: int


class CircuitBreaker:
    """Count consecutive failures of one model; refuse calls while it looks dead."""

    def __init__(
        self,
        model: str,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a closed breaker.

        Args:
            model: The model string it guards, for messages.
            failure_threshold: Consecutive failures that open it.
            cooldown_s: Seconds it stays open before letting one probe through.
            clock: A monotonic clock (a fake one in tests).
        """
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.model = model
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._opened = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its cool-down reads half-open)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self) -> None:
        """Let a call through, or refuse it.

        Raises:
            ModelUnavailableError: The breaker is open, or half-open with its probe
                already in flight.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        assert self._opened_at is not None
        retry_in = max(0.0, self._opened_at + self.cooldown_s - self._clock())
        raise ModelUnavailableError(
            f"{self.model} is failing ({self._failures} failures in a row); "
            f"its circuit breaker is open",
            model=self.model,
            retry_in=retry_in,
            hint=f"a probe call is let through in {retry_in:.1f} s; "
            "configure a fallback model to keep serving meanwhile",
        )

    def record_success(self) -> None:
        """Close the breaker: the model answered."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """Count a failure; open (or re-open, after a failed probe) when past the threshold."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            if self._opened_at is None or self._probing:
                self._opened += 1
            self._opened_at = self._clock()
            self._probing = False

    def release_probe(self) -> None:
        """Give the probe slot back when a probe ended without a verdict (cancelled)."""
        self._probing = False

    def stats(self) -> BreakerStats:
        """Return a snapshot."""
        return BreakerStats(
            model=self.model,
            state=self.state,
            consecutive_failures=self._failures,
            opened=self._opened,
        )


_BREAKERS: dict[tuple[str, str], CircuitBreaker] = {}


def breaker_for(
    model: str,
    *,
    endpoint: str = "",
    failure_threshold: int = 5,
    cooldown_s: float = 30.0,
) -> CircuitBreaker:
    """Return this process's breaker for `model` at `endpoint`, creating it on first use.

    Clients of the same model and endpoint share one breaker, so all of them stop
    calling a model that fails.
    """
    key = (model, endpoint)
    found = _BREAKERS.get(key)
    if found is None:
        found = _BREAKERS[key] = CircuitBreaker(
            model, failure_threshold=failure_threshold, cooldown_s=cooldown_s
        )
    return found


def reset_breakers() -> None:
    """Forget every breaker of this process (for tests and after reconfiguration)."""
    _BREAKERS.clear()
