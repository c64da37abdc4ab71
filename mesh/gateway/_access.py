"""Who may call the gateway and how often: bearer tokens and a per-token rate limit.

Tokens come from a secrets file (``mesh.security.read_secrets_file``: 0600, remembered
for redaction), one per client: ``RAYMESH_GATEWAY_TOKEN_ALICE=...`` is client ``alice``,
``RAYMESH_GATEWAY_TOKEN=...`` client ``default``. The replicas are given only the
tokens' SHA-256 digests, so Serve's stored deployment never holds a token, and a client
is known by its name in logs and limits, never by its token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from mesh.errors import ConfigError
from mesh.gateway._errors import TooManyRequestsError, UnauthorizedError
from mesh.security import read_secrets_file

__all__ = ["DEV_CLIENT", "TOKEN_PREFIX", "RateLimiter", "TokenCheck", "load_tokens"]

TOKEN_PREFIX = "RAYMESH_GATEWAY_TOKEN"
#: The client a `--dev` gateway (no tokens) serves every request as.
DEV_CLIENT = "dev"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(secrets_file: str | Path) -> dict[str, str]:
    """Return client name -> token digest for the gateway tokens in a secrets file.

    Raises:
        ConfigError: The file is missing, others can read it, or it holds no gateway token.
    """
    found = read_secrets_file(secrets_file)
    tokens: dict[str, str] = {}
    for key, value in found.items():
        if key == TOKEN_PREFIX or key.startswith(TOKEN_PREFIX + "_"):
            client = key.removeprefix(TOKEN_PREFIX).lstrip("_").lower() or "default"
            if len(value) < 16:
                raise ConfigError(
                    f"secrets file {secrets_file}: {key} is shorter than 16 characters",
                    hint="use a random token, e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`",
                )
            tokens[client] = _digest(value)
    if not tokens:
        raise ConfigError(
            f"secrets file {secrets_file} holds no gateway token",
            hint=f"add a line {TOKEN_PREFIX}_<CLIENT>=<random token> (or run with --dev "
            "on a trusted machine)",
        )
    return tokens


@dataclass(frozen=True)
class TokenCheck:
    """Tells which client a request's ``Authorization`` header is; `dev` lets anyone in."""

    digests: dict[str, str]
    dev: bool = False

    def client(self, authorization: str | None) -> str:
        """Return the client the header's bearer token belongs to.

        Raises:
            UnauthorizedError: No bearer token, or one of no client (the token is not shown).
        """
        if self.dev and not self.digests:
            return DEV_CLIENT
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError(
                "no bearer token in the Authorization header",
                hint="send `Authorization: Bearer <token>` (the openai SDK's api_key)",
            )
        digest = _digest(token.strip())
        # Every digest is compared, in constant time, so timing tells nothing of which.
        matches = [c for c, d in self.digests.items() if hmac.compare_digest(d, digest)]
        if not matches:
            raise UnauthorizedError(
                "the bearer token is not one of this gateway's",
                hint="use a token from the secrets file `raymesh serve` was started with",
            )
        return matches[0]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per client, in one replica: `rate_per_s` refill, `burst` at most.

    Each replica keeps its own buckets, so with N replicas a client may make up to N
    times the rate; a shared limiter would put a call to another actor on every request.
    """

    rate_per_s: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str, *, now: float | None = None) -> None:
        """Spend one request of `client`'s allowance.

        Raises:
            TooManyRequestsError: The bucket is empty; `retry_after_s` says when it is not.
        """
        now = time.monotonic() if now is None else now
        bucket = self._buckets.setdefault(client, _Bucket(tokens=float(self.burst), at=now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self.rate_per_s
            raise TooManyRequestsError(
                f"client {client!r} is over its rate limit of {self.rate_per_s:g} requests/s "
                f"(burst {self.burst}) at this replica",
                retry_after_s=math.ceil(wait * 1000) / 1000,
                hint="wait Retry-After seconds, or raise serve.rate_per_s in the team file",
            )
        bucket.tokens -= 1
