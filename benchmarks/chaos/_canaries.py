"""Canary secrets: values planted on purpose, so a later sweep can look for every one.

A scenario that passes a key into a prompt, an exception or a tool's output mints it
here; the secrets scenario, run last, then looks for every canary this process
minted, not only its own, in the logs, traces and dead letters the suite left behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["ENV_KEY", "canary_env_key", "canary_key", "in_environment", "planted"]

#: The environment variable the scenarios plant an agent's or the driver's canary in.
ENV_KEY = "RAYMESH_CANARY_API_KEY"

_planted: dict[str, str] = {}


def canary_key(label: str) -> str:
    """Return a new key shaped like a provider's (``sk-...``), which redaction knows by shape."""
    return _plant(label, "sk-canary-" + os.urandom(12).hex())


def canary_env_key(label: str) -> str:
    """Return a new opaque value for an ``*_API_KEY`` variable.

    It has no key's shape (no ``sk-`` prefix, under 40 characters), so only a process
    that holds it in its environment knows to redact it: the case that shows whether
    the environment's keys are masked by value.
    """
    return _plant(label, "cnry" + os.urandom(10).hex())


def planted() -> dict[str, str]:
    """Return every canary this process minted, by label."""
    return dict(_planted)


@contextlib.contextmanager
def in_environment(name: str, value: str) -> Iterator[None]:
    """Set `name` in this process's environment for the block, as a user's key would be."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _plant(label: str, value: str) -> str:
    _planted[f"{label} #{len(_planted) + 1}"] = value
    return value
