"""How `raymesh up` starts Ray safely: loopback only, token authentication on, token 0600.

Ray's GCS, dashboard, Jobs API and client ports run code for whoever reaches them, so
a head binds to 127.0.0.1 unless told to expose itself, and it never runs without
token authentication except when a developer says so (``--dev``), and then never on
an exposed address. Ray writes its token to a file anyone on the machine could read;
it is made readable by its owner only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from mesh.errors import ConfigError

__all__ = ["LOOPBACK", "bind_args", "head_env", "secure_token_file", "token_path"]

LOOPBACK = "127.0.0.1"
_LOOPBACKS = {LOOPBACK, "localhost", "::1"}


def bind_args(host: str) -> list[str]:
    """Return the ``ray start --head`` arguments that bind the head to `host`."""
    if host in _LOOPBACKS:
        return ["--node-ip-address", LOOPBACK, "--dashboard-host", LOOPBACK]
    return ["--dashboard-host", host]


def head_env(env: Mapping[str, str], *, host: str, dev: bool) -> dict[str, str]:
    """Return the environment for ``ray start``, with token authentication on.

    Raises:
        ConfigError: ``RAY_AUTH_MODE=disabled`` without `dev`, or on an exposed host.
    """
    mode = env.get("RAY_AUTH_MODE")
    if mode == "disabled":
        if not dev:
            raise ConfigError(
                "refusing to start Ray with token authentication disabled (RAY_AUTH_MODE=disabled)",
                hint="unset RAY_AUTH_MODE; for a throwaway local cluster, pass --dev",
            )
        if host not in _LOOPBACKS:
            raise ConfigError(
                f"refusing to expose an unauthenticated Ray on {host}",
                hint="anyone who reaches its ports can run code: keep token authentication on",
            )
    ready = dict(env)
    ready.setdefault("RAY_AUTH_MODE", "token")
    return ready


def token_path(env: Mapping[str, str] | None = None) -> Path:
    """Return where Ray keeps its authentication token."""
    env = os.environ if env is None else env
    return Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def secure_token_file(path: Path) -> bool:
    """Make Ray's token file readable by its owner only; return True if its mode changed.

    Raises:
        ConfigError: Group or others can read it and this user cannot change that.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if not info.st_mode & 0o077:
        return False
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"Ray's token file {path} has mode {stat.S_IMODE(info.st_mode):04o} and "
            "belongs to another user",
            hint=f"have its owner run: chmod 600 {path}",
        )
    path.chmod(0o600)
    return True
