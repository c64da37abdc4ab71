"""A Ray of this process's own (`Mesh.local`): loopback only, token on, token file private.

The same guards as ``raymesh up``: an inherited ``RAY_AUTH_MODE=disabled`` is refused
unless `dev`, Ray's token file is made before Ray starts, 0600, and the Ray binds
127.0.0.1, which is checked once it runs. It starts with raymesh's system config
(`RAY_SYSTEM_CONFIG`: batch calls inline, not through the object store), also checked.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ray

from mesh._compat import (
    RAY_SYSTEM_CONFIG,
    loopback_problem,
    ray_on_loopback,
    system_config_problem,
)
from mesh.errors import ClusterError
from mesh.observability import get_logger
from mesh.security import guard_local_ray, is_loopback, secure_token_file, token_path

__all__ = ["joining", "start_private_ray"]


def start_private_ray(*, dev: bool, **ray_init_kwargs: Any) -> None:
    """``ray.init`` a new local Ray under raymesh's guards.

    Raises:
        ConfigError: ``RAY_AUTH_MODE=disabled`` without `dev`, or a token file of
            another user is readable by others.
        ClusterError: The Ray took an address other than loopback; it is stopped.
    """
    guard_local_ray(dev=dev)
    system_config = RAY_SYSTEM_CONFIG | ray_init_kwargs.pop("_system_config", {})
    with ray_on_loopback():
        ray.init(_system_config=system_config, **ray_init_kwargs)
    secure_token_file(token_path())  # in case Ray wrote one after all
    problem = loopback_problem()
    if problem is not None:
        ray.shutdown()
        raise ClusterError(
            problem,
            hint="use the Ray version raymesh pins (mesh/_compat.py: VERIFIED_RAY)",
        )
    tuning = system_config_problem(system_config)
    if tuning is not None:  # slower, not wrong: said, not refused
        get_logger().warning("Ray ignored raymesh's system config", problem=tuning,
                             hint="use the Ray version raymesh pins (VERIFIED_RAY)")  # fmt: skip


def joining(address: str) -> contextlib.AbstractContextManager[None]:
    """The context for ``ray.init`` joining `address` (``host:port``, ``ray://``, ``auto``).

    Ray rewrites a loopback address to this machine's routable one before it connects,
    where a head on loopback (``raymesh up``) does not listen: for such an address the
    driver joins as `ray_on_loopback` says.
    """
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    return ray_on_loopback() if is_loopback(host) else contextlib.nullcontext()
