"""What one API key may do: requests and tokens per window, and the key's fingerprint.

A key is never kept, logged or sent anywhere by the limiter: it is reduced here, once, to
a fingerprint that names the limiter actor and appears in errors and metrics instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mesh import ConfigError

__all__ = ["LIMITS_VARIABLE", "RateLimits", "fingerprint", "limits_for", "rate_limits"]

#: The setting that gives every agent of a process the limits its own options do not:
#: JSON mapping model strings or provider names to limits, as a team file's ``limits:``.
LIMITS_VARIABLE = "RAYMESH_RATE_LIMITS"


class RateLimits(BaseModel):
    """The limits of one (provider, API key, model): requests and tokens per window.

    The providers publish per-minute limits; a shorter `window_s` scales them for tests
    and benchmarks (10 requests per second instead of 600 per minute).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Requests per window (None: unlimited until a response header says otherwise).
    requests: int | None = Field(default=None, gt=0)
    #: Input plus output tokens per window (None: unlimited).
    tokens: int | None = Field(default=None, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    #: How long a lease of capacity handed to one process stays valid; also how often a
    #: process reports its finished calls.
    lease_s: float = Field(default=1.0, gt=0)
    #: Calls wait in this order: higher first (per agent; a message may raise its own).
    priority: int = 0

    def per_lease(self) -> int:
        """Return the most requests one lease may carry: a lease period's worth, at least 1."""
        if self.requests is None:
            return 64
        return max(1, int(self.requests * self.lease_s / self.window_s))


def rate_limits(value: RateLimits | Mapping[str, Any] | None, *, agent: str | None) -> RateLimits:
    """Return `value` as `RateLimits` (a team file gives a mapping).

    Raises:
        ConfigError: A key is unknown or a value is out of range.
    """
    if isinstance(value, RateLimits):
        return value
    try:
        return RateLimits.model_validate(dict(value or {}))
    except ValidationError as exc:
        raise ConfigError(
            f"rate limits {dict(value or {})!r} are not usable: {exc.errors()[0]['msg']}",
            agent=agent,
            hint="write limits as {requests: N, tokens: N, window_s: 60}",
        ) from None


def limits_for(model: str, table: Mapping[str, Any] | None) -> Any:
    """Return the entry of `table` for ``provider:MODEL``: the model's own, else its provider's.

    An agent's ``limits:`` maps model strings or provider names to limits, so one entry can
    cover every model of a key's provider; what it does not name comes from the setting
    ``RAYMESH_RATE_LIMITS`` (the same mapping, as JSON), if set.

    Raises:
        ConfigError: ``RAYMESH_RATE_LIMITS`` is not a JSON mapping.
    """
    for source in (table or {}, _settings(os.environ.get(LIMITS_VARIABLE, ""))):
        found = source.get(model, source.get(model.partition(":")[0]))
        if found is not None:
            return found
    return None


@functools.cache
def _settings(text: str) -> Mapping[str, Any]:
    # Parsed once per value: every client of the process reads it.
    if not text.strip():
        return {}
    try:
        table = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{LIMITS_VARIABLE} is not JSON: {exc.msg} at character {exc.pos}",
            hint=f'{LIMITS_VARIABLE}=\'{{"openai": {{"requests": 500, "tokens": 200000}}}}\'',
        ) from None
    if not isinstance(table, dict):
        raise ConfigError(
            f"{LIMITS_VARIABLE} must map model strings or provider names to limits",
            hint=f'{LIMITS_VARIABLE}=\'{{"openai": {{"requests": 500}}}}\'',
        )
    return table


def fingerprint(provider: str, model: str, *, api_key: str, base_url: str) -> str:
    """Return the 16-hex-digit fingerprint of a (provider, key, endpoint, model).

    The same key at another endpoint is another limit (a proxy, a local server).
    """
    material = "\0".join((provider, api_key, base_url, model)).encode()
    return hashlib.sha256(material).hexdigest()[:16]
