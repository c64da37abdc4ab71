"""One rate limit per API key across the cluster.

Every model client using a key draws capacity (requests and tokens per window) from the
key's one scheduler: a detached Ray actor named by the key's fingerprint in the mesh's
namespace, or a scheduler in the process when Ray is not running. Capacity comes in
leases, so most calls pay no Ray round trip; calls wait in priority order, round robin
over conversations, and a call that cannot get capacity before its deadline fails at
once with `RateLimitedError`. The providers' rate-limit headers and 429s adjust and
pause the key for everyone.
"""

from actors.ratelimit._headers import LimitReport, read_headers
from actors.ratelimit._limiter import RateLimiter, call_priority
from actors.ratelimit._limits import (
    LIMITS_VARIABLE,
    RateLimits,
    fingerprint,
    limits_for,
    rate_limits,
)
from actors.ratelimit._scheduler import Finished, Grant, Heard, KeyScheduler
from actors.ratelimit._source import KeyLimiterActor, LeaseSource, actor_name, lease_source

__all__ = [
    "LIMITS_VARIABLE",
    "Finished",
    "Grant",
    "Heard",
    "KeyLimiterActor",
    "KeyScheduler",
    "LeaseSource",
    "LimitReport",
    "RateLimiter",
    "RateLimits",
    "actor_name",
    "call_priority",
    "fingerprint",
    "lease_source",
    "limits_for",
    "rate_limits",
    "read_headers",
]
