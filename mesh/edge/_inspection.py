"""What a `Mesh` reads of the mesh it belongs to: agents, usage, traces, dead letters, counters.

A mixin of `Mesh`, apart so that the class with the verbs stays one job; a read-only
join (``Mesh.connect(..., read_only=True)``) has all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import ray

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.control import TeamHandle
from mesh.datapath import Endpoint, RegistryClient, translate
from mesh.errors import PeerNotFoundError
from mesh.observability import AgentStats, DeadLetter, UsageReport, collect_dead_letters
from protocols import UsageQuery, UsageSummary

__all__ = ["Inspection"]


class Inspection:
    """The reading half of `Mesh`."""

    config: MeshConfig
    _registry: RegistryClient
    _spans: Any
    _edge: Endpoint
    _teams: list[TeamHandle]

    async def agents(
        self, *, role: str | None = None, capability: str | None = None
    ) -> list[AgentInfo]:
        """Return the live agents of the namespace, optionally by role and/or capability."""
        return [info for info, _ in await self._registry.find(role=role, capability=capability)]

    async def usage(
        self, *, names: Sequence[str] | None = None, trace_id: str | None = None
    ) -> UsageReport:
        """Return model usage and cost, totalled per agent, team, model and trace.

        Args:
            names: The agents to ask (default: every live agent of the namespace).
            trace_id: Count only this conversation.

        The teams are those this mesh started (`team`).
        """
        if names is None:
            names = [info.name for info in await self.agents()]
        summaries = await asyncio.gather(
            *(self._edge.ask(name, UsageQuery(), timeout=5, expect=UsageSummary) for name in names),
            return_exceptions=True,
        )
        return UsageReport.of(
            [s for s in summaries if isinstance(s, UsageSummary)],
            trace_id=trace_id,
            teams=await self._team_paths(),
        )

    async def _team_paths(self) -> dict[str, str]:
        # Each member agent's team path (``review/writers``), for usage per team.
        paths: dict[str, str] = {}
        for team in self._teams:
            if not team.stopped:
                with contextlib.suppress(ray.exceptions.RayError):  # it failed: none run
                    paths |= {row["name"]: row["team"] for row in await team.members()
                              if row["kind"] == "agent"}  # fmt: skip
        return paths

    async def trace(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Return the spans of a conversation kept by the mesh, in start order.

        Args:
            trace_id: The conversation; the most recent one when None.
        """
        if trace_id is None:
            trace_id = await self._spans.last_trace.remote()
            if trace_id is None:
                return []
        spans: list[dict[str, Any]] = await self._spans.trace.remote(trace_id)
        return spans

    async def dead_letters(self, agent: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """Return the most recent dead letters of the live agents and this edge, oldest first.

        Args:
            agent: Only those that concern this agent (recorded by, sent by or sent to it).
            limit: At most this many (the most recent).
        """
        hosts = [handle for _, handle in await self._registry.find()]
        return await collect_dead_letters(
            hosts, self._edge.dead_letters.recent(), agent=agent, limit=limit
        )

    async def span_stats(self) -> dict[str, int]:
        """Return how many spans the mesh keeps, its capacity and how many it dropped."""
        stats: dict[str, int] = await self._spans.stats.remote()
        return stats

    async def stats(self, name: str) -> AgentStats:
        """Return agent `name`'s counters.

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
            PeerDeadError: It died.
        """
        handle = await self.actor(name)
        try:
            return AgentStats(**await handle.stats.remote())
        except ray.exceptions.RayError as exc:
            raise translate(exc, agent=name) from exc

    async def actor(self, name: str) -> Any:
        """Return the Ray actor handle hosting agent `name` (for Ray-level operations).

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
        """
        found = await self._registry.lookup(name)
        if found is None:
            raise PeerNotFoundError(f"no agent named {name!r}", agent=name)
        return found[1]
