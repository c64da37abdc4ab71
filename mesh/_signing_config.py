"""MeshConfig's secret settings: reading the secrets file, and the signer they make."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from mesh.secrets import read_secrets_file
from mesh.telemetry import remember_secret
from protocols.signing import Signer

if TYPE_CHECKING:
    from mesh.config import MeshConfig

__all__ = ["adopt_secrets", "previous_keys", "remember_secrets", "signer_of", "with_file_secrets"]

_MIN_SECRET = 16


def previous_keys(value: Any) -> Any:
    """Accept the previous secrets as one comma-separated string (how env vars carry them)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, SecretStr):
        return previous_keys(value.get_secret_value())
    return value


def with_file_secrets(config: MeshConfig) -> None:
    """Fill the secrets not given otherwise from the secrets file, then check them.

    Raises:
        ValueError: A secret is shorter than 16 characters (pydantic names the field).
        ConfigError: The secrets file is missing or readable by others.
    """
    if config.secrets_file is not None:
        found = read_secrets_file(config.secrets_file)
        # Frozen model, still being validated: set the fields it did not get elsewhere.
        if config.secret is None and found.get("RAYMESH_SECRET"):
            object.__setattr__(config, "secret", SecretStr(found["RAYMESH_SECRET"]))
        if not config.previous_secrets and found.get("RAYMESH_PREVIOUS_SECRETS"):
            keys = previous_keys(found["RAYMESH_PREVIOUS_SECRETS"])
            object.__setattr__(config, "previous_secrets", tuple(SecretStr(k) for k in keys))
    keys = [config.secret, *config.previous_secrets] if config.secret is not None else []
    if config.previous_secrets and config.secret is None:
        raise ValueError("previous_secrets are set but secret is not")
    for key in keys:
        assert key is not None
        if len(key.get_secret_value()) < _MIN_SECRET:
            raise ValueError(f"a secret must be at least {_MIN_SECRET} characters")
    remember_secrets(config)


def remember_secrets(config: MeshConfig) -> None:
    """Make this process redact the config's secrets wherever they turn up."""
    for key in (config.secret, *config.previous_secrets):
        if key is not None:
            remember_secret(key.get_secret_value())


def adopt_secrets(config: MeshConfig) -> None:
    """In an agent's process: redact the config's secrets and its secrets file's values,
    and let providers find API keys in that file (``RAYMESH_SECRETS_FILE``)."""
    remember_secrets(config)
    if config.secrets_file is not None and config.secrets_file.exists():
        read_secrets_file(config.secrets_file)  # remembers every value it reads
        os.environ.setdefault("RAYMESH_SECRETS_FILE", str(config.secrets_file))


def signer_of(config: MeshConfig) -> Signer | None:
    """Return the signer for the config's secrets, or None for an unsigned mesh."""
    if config.secret is None:
        return None
    return Signer(
        config.secret.get_secret_value().encode(),
        [key.get_secret_value().encode() for key in config.previous_secrets],
    )
