"""Starting and stopping what a `Mesh` runs: agents, teams, and at the end Ray itself.

A mixin of `Mesh`: the lifecycle apart from the verbs. A read-only mesh starts nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from mesh.agent import Agent, AgentInfo
from mesh.control import (
    SUPERVISOR,
    AgentSpec,
    TeamHandle,
    TeamSpec,
    load_team,
    start_host,
    supervisor_options,
)
from mesh.edge._inspection import Inspection
from mesh.errors import ConfigError, MeshError

__all__ = ["Lifecycle"]


class Lifecycle(Inspection):
    """What `Mesh` starts, in start order, and how it stops it
    (finding its agents as `Inspection` does)."""

    _owns_ray: bool
    _read_only: bool
    _spawned: dict[str, Any]
    _log: Any

    async def spawn(
        self,
        agent_cls: type[Agent],
        *,
        name: str,
        role: str | None = None,
        capabilities: Sequence[str] = (),
        model: str | None = None,
        topics: Sequence[str] = (),
        concurrency: int | None = None,
        mailbox_size: int | None = None,
        actor_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AgentInfo:
        """Start `agent_cls` in a new host actor and register it as `name`.

        Args:
            agent_cls: An `Agent` subclass.
            name: Unique among live agents of the namespace.
            role: Its role, for `peers(role=...)` lookups.
            capabilities: What it can do, for `peers(capability=...)` lookups.
            model: The model behind it (LLM agents use it; the registry shows it).
            topics: Topics it subscribes to, besides its class's `topics`.
            concurrency: Messages handled at once (default: the class's `concurrency`).
            mailbox_size: Messages queued before refusal (default: the config's).
            actor_options: Extra Ray actor options (resources, scheduling_strategy, ...).
            kwargs: Passed to the agent class's constructor.

        Raises:
            ConfigError: The class, the name or an option is not usable, or the agent
                failed to start (its constructor or on_start raised).
            NameTakenError: A live agent already has the name.
        """
        self._writable("spawn")
        spec = AgentSpec.build(
            name=name,
            agent=agent_cls,
            role=role,
            capabilities=tuple(capabilities),
            model=model,
            topics=tuple(topics),
            concurrency=concurrency,
            mailbox_size=mailbox_size,
            options=kwargs,
            actor_options=actor_options or {},
        )
        await self._registry.evict_if_dead(name)
        # Before the agent runs: a peer may meet its replies' types at its first message.
        await self._edge.types.publish(agent_cls.message_classes)
        host, info = await start_host(spec, self.config)
        self._spawned[name] = host
        return info

    async def team(self, source: str | Path | dict[str, Any] | TeamSpec) -> TeamHandle:
        """Start a team tree from a spec, a mapping or a YAML file, under a root supervisor.

        Raises:
            ConfigError: The team file or spec is invalid, or an agent failed to start.
            NameTakenError: A live agent already has one of the team's names.
        """
        self._writable("team")
        spec = load_team(source)
        for agent in spec.walk_agents():
            await self._registry.evict_if_dead(agent.name)
        root = SUPERVISOR.options(
            **supervisor_options(
                spec, name=f"raymesh.team.{spec.name}", namespace=self.config.namespace
            )
        ).remote()
        try:
            started = await root.start.remote(spec, self.config, spec.name)
        except ray.exceptions.RayError as exc:
            ray.kill(root)
            raise ConfigError(f"team {spec.name!r} could not start: {exc}") from exc
        if "error" in started:
            ray.kill(root)
            raise MeshError.from_wire(started["error"])
        team = TeamHandle(spec, root)
        self._teams.append(team)
        return team

    def _writable(self, verb: str) -> None:
        if self._read_only:
            raise ConfigError(
                f"Mesh.{verb}: this mesh was joined read-only",
                hint="Mesh.connect(address) without read_only=True may start agents",
            )

    async def stop(self, name: str) -> None:
        """Stop agent `name` gracefully (handlers finish, on_stop runs), then end its actor."""
        host = self._spawned.pop(name, None) or await self.actor(name)
        try:
            await asyncio.wait_for(host.stop.remote(), self.config.stop_grace_s * 2 + 1)
        except (TimeoutError, ray.exceptions.RayError) as exc:
            self._log.warning("agent did not stop gracefully; killing it", agent=name,
                              error=type(exc).__name__)  # fmt: skip
        ray.kill(host)

    async def shutdown(self) -> None:
        """Stop the teams and agents this mesh started, newest first, then Ray if it started it."""
        for team in reversed(self._teams):
            await team.stop()
        self._teams.clear()
        for name in reversed(list(self._spawned)):
            await self.stop(name)
        self._edge.close()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
