"""Secrets: where keys may come from (the environment, a 0600 file) and where they may not.

API keys and the cluster secret are read from the environment or from a dotenv-style
secrets file (``KEY=value`` lines) that only its owner can read. A team file is not a
place for them: one is committed, copied and printed, so a value in it that looks like
a key is a load error. Values read from a file are remembered for redaction, so they
are masked in logs and spans just like the environment's ``*_API_KEY`` variables.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from mesh.errors import ConfigError
from mesh.security._redaction import (
    REFERENCE_NAME,
    URL_WITH_PASSWORD,
    is_known_secret,
    is_secret_name,
    redact,
    remember_secret,
)

__all__ = [
    "env_secret_reason",
    "get_secret",
    "looks_like_secret",
    "read_secrets_file",
    "secret_fields",
]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
# Prefixes of real providers' keys and tokens.
_KEY_PREFIX = re.compile(
    r"^(sk-|sk_|rk_|pk_live_|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|AKIA|ASIA|AIza|hf_|"
    r"ya29\.|eyJ)[A-Za-z0-9_\-.]{8,}$"
)
_SECRET_NAME = re.compile(r"(api_?key|secret|token|password|passwd|credential)", re.IGNORECASE)
_RANDOM = re.compile(r"^[A-Za-z0-9+/=_\-.]{24,}$")
# What a secrets file may not set: its keys go into the environment of Ray's processes
# (`raymesh up --secrets-file`), where these would switch token authentication off
# (RAY_AUTH_MODE), redirect Ray, or choose which programs and libraries run.
_FORBIDDEN = re.compile(r"^(RAY_.*|PATH|LD_.*|PYTHON.*)$", re.IGNORECASE)


def read_secrets_file(path: str | Path) -> dict[str, str]:
    """Return the ``KEY=value`` pairs of a secrets file, after checking who can read it.

    Raises:
        ConfigError: The file is missing, not a regular file, readable or writable by
            group or others, has a line that is not ``KEY=value``, or sets a variable
            that is not a secret's to set (``RAY_*``, ``PATH``, ``LD_*``, ``PYTHON*``).
    """
    path = Path(path).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read secrets file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"secrets file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"secrets file {path} has mode {stat.S_IMODE(info.st_mode):04o}: "
            "group or others can read it",
            hint=f"chmod 600 {path}",
        )
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            # The line itself is not shown: it may be a key with a typo around it.
            raise ConfigError(f"secrets file {path}, line {number}: expected KEY=value")
        name, value = match.groups()
        if _FORBIDDEN.match(name):
            # The value is not shown: it may be a key under a misplaced name.
            raise ConfigError(
                f"secrets file {path}, line {number}: {name} may not be set by a secrets "
                "file (it would reach Ray's processes' environment)",
                hint="keep only keys in it; set Ray's and the interpreter's variables "
                "in the shell that starts raymesh",
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
        remember_secret(value)
    return values


def get_secret(name: str, *, secrets_file: str | Path | None = None) -> str | None:
    """Return the secret `name` from the environment, else from a secrets file, else None.

    The file is `secrets_file`, or the one ``RAYMESH_SECRETS_FILE`` names.

    Raises:
        ConfigError: The secrets file is missing or others can read it.
    """
    value = os.environ.get(name)
    if value:
        return value
    secrets_file = secrets_file or os.environ.get("RAYMESH_SECRETS_FILE") or None
    if secrets_file is None:
        return None
    return read_secrets_file(secrets_file).get(name) or None


def looks_like_secret(name: str, value: Any) -> bool:
    """Return True when a setting `name` holds what looks like a key rather than a reference."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if _KEY_PREFIX.match(text):
        return True
    # Random keys mix digits in; an upper-case env var name does not. A name for where a
    # secret is kept (``secrets_file``, ``KEY_PATH``) holds a path, however random it looks.
    random = bool(_RANDOM.match(text)) and any(c.isdigit() for c in text)
    return random and bool(_SECRET_NAME.search(name)) and not REFERENCE_NAME.search(name)


def env_secret_reason(name: str, value: str) -> str | None:
    """Return why the environment variable `name` (set to `value`) looks like a secret, or None.

    Its value may look like a key (any shape the redactor masks), be a key this process
    holds, or be a URL with a password; or its name may be a secret's (``*_KEY``,
    ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ``*PRIVATE*``, ``*_AUTH*``,
    ``*_CREDENTIALS``, ``*API_KEY*``, ...). A name for where a secret is kept (``*_FILE``,
    ``*_PATH``, ``*_DIR``) holding no key is not one. The reason never shows the value.
    """
    reference = bool(REFERENCE_NAME.search(name))
    if URL_WITH_PASSWORD.search(value):
        return "its value is a URL with a password"
    if is_known_secret(value):
        return "its value is a key of this environment"
    # A long path under a name like SECRETS_FILE is not a key: judge it by shape alone.
    if looks_like_secret("" if reference else name, value) or redact(value) != value:
        return "its value looks like a key"
    if not reference and (is_secret_name(name) or _SECRET_NAME.search(name)):
        return "its name is a secret's"
    return None


def secret_fields(data: Any, path: str = "") -> list[str]:
    """Return the paths (``agents[0].options.api_key``) of key-looking values in `data`."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if looks_like_secret(str(key), value):
                found.append(where)
            else:
                found.extend(secret_fields(value, where))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            where = f"{path}[{index}]"
            if looks_like_secret(path.rsplit(".", 1)[-1], value):
                found.append(where)
            else:
                found.extend(secret_fields(value, where))
    return found
