"""Retries with exponential backoff and jitter, inside a deadline.

The SDKs' own retries are turned off because they know nothing of the message's deadline
(by default they wait up to 600 s, twice). Here each attempt gets exactly the time left,
a wait never runs past the deadline, and a provider's ``retry-after`` is honoured when it
fits in the time left; when it does not, the call fails now rather than at the deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from actors.breaker import CircuitBreaker
from actors.errors import ModelUnavailableError, ProviderError
from mesh import DeadlineExceededError

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How often and how patiently to retry a failed model request."""

    model_config = ConfigDict(frozen=True)

    #: Attempts in all, the first included.
    max_attempts: int = Field(default=4, ge=1)
    #: The first backoff; each later one doubles, up to `max_delay_s`.
    base_delay_s: float = Field(default=0.25, ge=0)
    max_delay_s: float = Field(default=8.0, ge=0)
    #: Fraction of each backoff drawn at random ("equal jitter"), to spread out callers.
    jitter: float = Field(default=0.5, ge=0, le=1)
    #: A request gets at most this long even when the deadline is further away.
    attempt_timeout_s: float = Field(default=120.0, gt=0)

    def backoff(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Return the wait before retry number `attempt` (1 for the first retry)."""
        raw = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        draw: float = (rng or random).random()
        return raw * (1 - self.jitter) + raw * self.jitter * draw


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    model: str,
    deadline: float,
    policy: RetryPolicy,
    breaker: CircuitBreaker | None = None,
    on_retry: Callable[[int, ProviderError, float], None] | None = None,
) -> T:
    """Call ``attempt(timeout)`` until it succeeds, retrying retryable `ProviderError`s.

    Args:
        attempt: Makes one request within the given timeout (seconds).
        model: The model string, for errors.
        deadline: Absolute epoch seconds by which everything must be over.
        policy: Attempts and backoff.
        breaker: Consulted before each attempt and told of each outcome.
        on_retry: Called with (attempt number, error, wait) before each wait.

    Raises:
        DeadlineExceededError: The deadline passed (the running request is cancelled).
        ModelUnavailableError: The breaker is open, or the retries ran out, or the
            provider asked to wait past the deadline.
        ProviderError: A non-retryable failure (a bad request, a refused key).
    """
    last: ProviderError | None = None
    for number in range(1, policy.max_attempts + 1):
        remaining = deadline - time.time()
        if remaining <= 0:
            raise _deadline_error(model, deadline, last)
        if breaker is not None:
            breaker.before_call()
        outcome = await _attempt(attempt, min(remaining, policy.attempt_timeout_s), breaker)
        if not isinstance(outcome, _Failed):
            return outcome
        if outcome.error is None and time.time() >= deadline - 0.005:
            raise _deadline_error(model, deadline, last)
        last = outcome.error or ProviderError(
            f"{model} did not answer within {policy.attempt_timeout_s} s",
            model=model,
            retryable=True,
        )
        if number == policy.max_attempts:
            break
        wait = policy.backoff(number)
        if last.retry_after is not None:
            wait = max(wait, last.retry_after)
        remaining = deadline - time.time()
        if wait >= remaining:
            raise ModelUnavailableError(
                f"{model} failed ({last.message}) and the next retry, in {wait:.2f} s, "
                f"would pass the deadline ({max(0.0, remaining):.2f} s left)",
                model=model,
                hint="give the call a longer deadline, or a fallback model",
            ) from last
        if on_retry is not None:
            on_retry(number, last, wait)
        await asyncio.sleep(wait)
    assert last is not None
    raise ModelUnavailableError(
        f"{model} failed {policy.max_attempts} times in a row; last error: {last.message}",
        model=model,
        hint="the provider is down or overloaded; configure a fallback model",
    ) from last


class _Failed:
    """A retryable failure (`error`), or the deadline (`error` is None)."""

    __slots__ = ("error",)

    def __init__(self, error: ProviderError | None) -> None:
        self.error = error


async def _attempt(
    attempt: Callable[[float], Awaitable[T]], timeout: float, breaker: CircuitBreaker | None
) -> T | _Failed:
    """Make one attempt; tell the breaker how it went.

    Raises:
        ProviderError: A non-retryable failure.
    """
    try:
        # The SDK gets the timeout too, but httpx applies it per phase (connect, each
        # read), so only an outer bound guarantees the deadline.
        async with asyncio.timeout(timeout):
            result = await attempt(timeout)
    except TimeoutError:
        # The caller's time ran out, which says little about the model's health.
        if breaker is not None:
            breaker.release_probe()
        return _Failed(None)
    except ProviderError as exc:
        if breaker is not None:
            # A refused request (bad key, bad input) says nothing about the model's health.
            if exc.retryable:
                breaker.record_failure()
            else:
                breaker.release_probe()
        if not exc.retryable:
            raise
        return _Failed(exc)
    except BaseException:
        if breaker is not None:
            breaker.release_probe()
        raise
    if breaker is not None:
        breaker.record_success()
    return result


def _deadline_error(model: str, deadline: float, last: ProviderError | None) -> Exception:
    late = time.time() - deadline
    cause = f"; last error: {last.message}" if last is not None else ""
    return DeadlineExceededError(
        f"the call to {model} ran out of time ({late:+.2f} s past its deadline){cause}",
        hint="give the message a longer deadline, or use a faster model",
    )
