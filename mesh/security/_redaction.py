"""Secret redaction: keys never reach a log, span, error or answer.

The environment's keys (``*_API_KEY``, ``*_TOKEN``, ...), keys read from secrets files,
and key-shaped strings are replaced by a mark wherever text leaves a process.
"""

from __future__ import annotations

import os
import re

_SECRET = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|[A-Za-z0-9_-]{40,})")


_REMEMBERED: set[str] = set()


def remember_secret(value: str) -> None:
    """Redact `value` wherever it turns up from now on (e.g. a key read from a secrets file)."""
    if len(value) >= 8:
        _REMEMBERED.add(value)


_MARKS = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRETS", "_PASSWORD")


class _EnvironmentSecrets:
    """Values of the environment's keys and tokens (e.g. OPENAI_API_KEY), kept up to date.

    Redaction runs on every error text and dead letter, and reading the whole
    environment each time was a tenth of a host's time under a flood of bad frames.
    The list is read again when the number of variables changes or one of the secret
    ones changes its value, which a few lookups tell.
    """

    def __init__(self) -> None:
        self._size = -1
        self._values: dict[str, str] = {}
        self._remembered = 0
        self._secrets: list[str] = []

    def current(self) -> list[str]:
        """Return the secrets to redact, longest first."""
        stale = len(os.environ) != self._size or len(_REMEMBERED) != self._remembered
        if stale or any(os.environ.get(k) != v for k, v in self._values.items()):
            self._size, self._remembered = len(os.environ), len(_REMEMBERED)
            self._values = {k: v for k, v in os.environ.items() if k.endswith(_MARKS)}
            found = {v for v in self._values.values() if len(v) >= 8}
            self._secrets = sorted(found | _REMEMBERED, key=len, reverse=True)
        return self._secrets


_known_secrets = _EnvironmentSecrets().current


def is_known_secret(value: str) -> bool:
    """Return True when `value` is a key this process knows (its environment's, or remembered)."""
    return value in _known_secrets()


def redact(text: str) -> str:
    """Replace API keys and tokens (the environment's, and key-like strings) with a mark."""
    for secret in _known_secrets():
        text = text.replace(secret, "[redacted]")
    return _SECRET.sub("[redacted]", text)
