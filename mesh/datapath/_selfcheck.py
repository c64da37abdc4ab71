"""The host's start-up self-check of the private touches it relies on (`mesh._compat`)."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from mesh._compat import VERIFIED_RAY, settle_ray_calls_at_once, settling_problem
from mesh.observability import AgentStats, count_compat_failure

__all__ = ["settle_ray_calls"]


def settle_ray_calls(stats: AgentStats, log: Any, *, metrics: bool) -> bool:
    """Make Ray's calls to this host settle as they end, and say loudly if they cannot.

    Must run inside a Ray call (the host's ``start``): that call's task is what the check
    looks at. Records the outcome in `stats`; a failure is a warning and, with `metrics`,
    a count of ``raymesh_compat_failures``. Returns True if the calls settle.
    """
    settle_ray_calls_at_once(asyncio.get_running_loop())
    problem = settling_problem()
    stats.ray_calls_settle = problem is None
    if problem is None:
        return True
    log.warning(
        "Ray calls do not settle at once: a handler that blocks the loop can mute this "
        "host's control lane",
        problem=problem,
        ray_version=ray.__version__,
        verified_on=", ".join(VERIFIED_RAY),
        fix="install a Ray version raymesh pins, or update mesh/_compat.py for this one",
    )
    if metrics:
        count_compat_failure(stats.name, "ray_call_settling", ray.__version__)
    return False
