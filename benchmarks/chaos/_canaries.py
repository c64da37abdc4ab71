"""Canary secrets: values planted on purpose, so a later sweep can look for every one.

A scenario that passes a key into a prompt, an exception or a tool's output mints it
here; the secrets scenario, run last, then looks for every canary this process
minted, not only its own, in the logs, traces and dead letters the suite left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import string
from collections.abc import Iterator

__all__ = [
    "ENV_KEY",
    "SECRET_NAMES",
    "canary_env_key",
    "canary_key",
    "canary_shapes",
    "canary_word",
    "in_environment",
    "planted",
]

#: The environment variable the scenarios plant an agent's or the driver's canary in.
ENV_KEY = "RAYMESH_CANARY_API_KEY"

_planted: dict[str, str] = {}


def canary_key(label: str) -> str:
    """Return a new key shaped like a provider's (``sk-...``), which redaction knows by shape."""
    return _plant(label, "sk-canary-" + os.urandom(12).hex())


def canary_env_key(label: str) -> str:
    """Return a new opaque value for an ``*_API_KEY`` variable.

    It has no key's shape (no provider's prefix), so only a process
    that holds it in its environment knows to redact it: the case that shows whether
    the environment's keys are masked by value.
    """
    return _plant(label, "cnry" + os.urandom(10).hex())


#: A variable name of every pattern whose values the redactor masks by name.
SECRET_NAMES = (
    "CHAOS_VENDOR_KEY", "CHAOS_VENDOR_TOKEN", "CHAOS_VENDOR_SECRET", "CHAOS_DB_PASSWORD",
    "CHAOS_PRIVATE_BLOB", "CHAOS_PROXY_AUTH_HEADER", "CHAOS_GCP_CREDENTIALS",
)  # fmt: skip

_ALNUM = string.ascii_letters + string.digits


def _draw(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def canary_shapes(label: str) -> dict[str, tuple[str, str]]:
    """Return one new canary of every key shape the redactor knows, by shape.

    Each is (the secret, the text it is planted in): the secret alone, or for the shapes
    known by their context, that context around it (a URL's password, the value after
    ``aws_secret_access_key=``). Only the secret is looked for afterwards.
    """
    pw = "pw" + os.urandom(8).hex()
    aws_secret = _draw(_ALNUM + "/+", 40)
    made = {
        "openai": "sk-proj-" + _draw(_ALNUM, 32),
        "anthropic": "sk-ant-api03-" + _draw(_ALNUM, 40),
        "google": "AIza" + _draw(_ALNUM, 35),
        "aws-id": "AKIA" + _draw(string.ascii_uppercase + string.digits, 16),
        "huggingface": "hf_" + _draw(_ALNUM, 34),
        "github": "ghp_" + _draw(_ALNUM, 36),
        "github-pat": "github_pat_" + _draw(_ALNUM, 22) + "_" + _draw(_ALNUM, 59),
        "gitlab": "glpat-" + _draw(_ALNUM, 20),
        "stripe": "sk_live_" + _draw(_ALNUM, 24),
        "slack": "xoxb-" + _draw(string.digits, 12) + "-" + _draw(_ALNUM, 24),
    }
    shapes = {shape: (_plant(f"{label} ({shape})", key), key) for shape, key in made.items()}
    shapes["aws-secret"] = (_plant(f"{label} (aws-secret)", aws_secret),
                            f"aws_secret_access_key={aws_secret}")  # fmt: skip
    shapes["url-password"] = (_plant(f"{label} (url-password)", pw),
                              f"postgres://app:{pw}@db.internal:5432/orders")  # fmt: skip
    return shapes


def canary_word(label: str) -> str:
    """Return a new opaque value of letters only, like a passphrase.

    No shape and no digit: only a process that knows it (by a variable's name, or from a
    secrets file) can mask it, and a team file's check for keys does not take it for one.
    """
    return _plant(label, "cnry" + _draw(string.ascii_lowercase, 20))


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
