"""How raymesh starts Ray safely: loopback only, token authentication on, token 0600.

Ray's GCS, dashboard, Jobs API and client ports run code for whoever reaches them, so
a Ray that raymesh starts (``raymesh up``, ``raymesh run``, `Mesh.local`) binds to
127.0.0.1 unless told to expose itself, and it never runs without token
authentication except when a developer says so (``--dev``), and then never on an
exposed address. Ray writes its token to a file anyone on the machine could read: the
token file is made before Ray starts, readable by its owner only, and an existing one
is narrowed to that.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from mesh._compat import LOOPBACK_ENV, reload_ray_config
from mesh.errors import ConfigError
from mesh.security._private_files import FILE_MODE, narrow, write_private

__all__ = [
    "LOOPBACK",
    "bind_args",
    "guard_local_ray",
    "head_env",
    "is_loopback",
    "prepare_token",
    "secure_token_file",
    "token_path",
]

LOOPBACK = "127.0.0.1"
_LOOPBACKS = {LOOPBACK, "localhost", "::1"}


def is_loopback(host: str) -> bool:
    """Return True if `host` is this machine's loopback address (nothing else reaches it)."""
    return host in _LOOPBACKS


def bind_args(host: str) -> list[str]:
    """Return the ``ray start --head`` arguments that bind the head to `host`."""
    if is_loopback(host):
        return ["--node-ip-address", LOOPBACK, "--dashboard-host", LOOPBACK]
    return ["--dashboard-host", host]


def head_env(env: Mapping[str, str], *, host: str, dev: bool) -> dict[str, str]:
    """Return the environment for ``ray start``, with token authentication on.

    On loopback it also holds what makes Ray keep 127.0.0.1 as its address (Ray
    would otherwise bind its ports to every interface; see `mesh._compat`).

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
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to expose an unauthenticated Ray on {host}",
                hint="anyone who reaches its ports can run code: keep token authentication on",
            )
    ready = dict(env)
    ready.setdefault("RAY_AUTH_MODE", "token")
    if is_loopback(host):
        ready |= LOOPBACK_ENV
    return ready


def guard_local_ray(*, dev: bool) -> None:
    """Get this process ready to start a Ray of its own (`Mesh.local`), under `up`'s rule.

    Token authentication is switched on unless ``RAY_AUTH_MODE`` says otherwise,
    which only `dev` allows (`head_env`), and the token file is made private.

    Raises:
        ConfigError: ``RAY_AUTH_MODE=disabled`` without `dev`, or the token file is
            readable by others and not this user's.
    """
    mode = head_env(os.environ, host=LOOPBACK, dev=dev)["RAY_AUTH_MODE"]
    if os.environ.get("RAY_AUTH_MODE") != mode:
        os.environ["RAY_AUTH_MODE"] = mode
        reload_ray_config()  # Ray read the mode when imported
    prepare_token(os.environ)


def prepare_token(env: Mapping[str, str]) -> None:
    """Make sure a Ray started with `env` finds its token in a file only its owner reads.

    Ray would write a missing token itself, with the umask's mode (0644 as a rule), and
    only at ``~/.ray/auth_token``; it is written here first, 0600, where `env` says.

    Raises:
        ConfigError: The token file is readable by others and not this user's.
    """
    if env.get("RAY_AUTH_MODE", "token") != "token" or env.get("RAY_AUTH_TOKEN"):
        return
    path = token_path(env)
    if not path.exists():
        # What Ray's own generator makes; a token another process wrote meanwhile wins.
        write_private(path, secrets.token_hex(32), keep_existing=True)
    secure_token_file(path)


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
        return narrow(path, FILE_MODE)
    except FileNotFoundError:
        return False
