"""Starting an agent's host actor: shared by `Mesh.spawn` and supervisors."""

from __future__ import annotations

from typing import Any

import ray

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.control._team import AgentSpec
from mesh.datapath import AgentHost
from mesh.errors import ConfigError, MeshError
from mesh.security import EDGE_PREFIX

__all__ = ["HOST", "create_host", "start_host"]

# The control lane: one thread of its own that answers health checks and renews the
# lease even while a handler blocks the main event loop.
# The control lane takes a few calls at once (the supervisor's, `raymesh status`, a
# probe's): one waiting to tell a blocked loop from a starved one must not hold the rest.
HOST: Any = ray.remote(concurrency_groups={"ctl": 4})(AgentHost)  # type: ignore[call-overload]


def create_host(spec: AgentSpec, config: MeshConfig) -> Any:
    """Create the host actor for `spec` and return its handle, without starting the agent.

    Ray starts the actor's process in the background: a supervisor creates the hosts of
    all its agents at once and starts them one by one, in order, so that the processes'
    start (most of an agent's start, and mostly waiting) overlaps.

    Raises:
        ConfigError: The name is reserved.
    """
    if spec.name.startswith(EDGE_PREFIX):
        raise ConfigError(
            f"agent name {spec.name!r} is reserved: names beginning with {EDGE_PREFIX!r} "
            "are drivers'",
            agent=spec.name,
            hint=f"rename the agent, e.g. {spec.name.removeprefix(EDGE_PREFIX) or 'gateway'!r}",
        )
    options: dict[str, Any] = {
        "num_cpus": 0,
        "max_restarts": 0,  # raymesh's supervisor decides on restarts, not Ray
        "max_task_retries": 0,
        "max_concurrency": 10_000,
        **spec.actor_options,
    }
    return HOST.options(**options).remote(
        spec.agent_class(),
        name=spec.name,
        role=spec.role,
        capabilities=spec.capabilities,
        model=spec.model,
        topics=spec.topics,
        concurrency=spec.concurrency,
        mailbox_size=spec.mailbox_size,
        kwargs=spec.constructor_kwargs(),
        config=config,
        access=spec.access,
    )


async def start_host(
    spec: AgentSpec, config: MeshConfig, host: Any = None
) -> tuple[Any, AgentInfo]:
    """Start the agent in `host` (created here if not given), register it; return both.

    Raises:
        ConfigError: The name is reserved, or the agent could not be created or failed
            to start.
        NameTakenError: A live agent already has the name.
    """
    if host is None:
        host = create_host(spec, config)
    try:
        started = await host.start.remote()
    except Exception as exc:
        ray.kill(host)
        raise ConfigError(
            f"agent {spec.name!r} could not be created: {exc}",
            agent=spec.name,
            hint="its class and constructor arguments must be importable and picklable",
        ) from exc
    if "error" in started:
        ray.kill(host)
        raise MeshError.from_wire(started["error"])
    await host.start_control.remote()
    return host, AgentInfo.model_validate(started["info"])
