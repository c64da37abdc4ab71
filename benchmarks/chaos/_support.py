"""What the chaos scenarios share: teams to kill, the agents' incarnations, error names."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import ray

from mesh.agent import Agent
from mesh.control import TeamHandle
from mesh.edge import Mesh
from mesh.errors import HandlerError, MeshError

__all__ = [
    "HUNG_AFTER_S",
    "Killer",
    "error_name",
    "eventually",
    "incarnations",
    "start_team",
    "unique",
    "while_killing",
]

#: An ask still open this long after its deadline counts as hung.
HUNG_AFTER_S = 5.0

_runs = itertools.count()


def unique(prefix: str) -> str:
    """Return a name no other scenario of this process uses."""
    return f"chaos-{prefix}-{time.time_ns() % 10**8:08d}-{next(_runs)}"


async def start_team(
    mesh: Mesh, names: Sequence[str], agent: type[Agent], *, senders: Sequence[str] = ()
) -> TeamHandle:
    """Start `names` as a one_for_one team that restarts them however often they die.

    `senders` are agents outside the team allowed to message it (teams are closed to
    other teams' agents by default).
    """
    spec: dict[str, Any] = {
        "name": unique("team"),
        "strategy": "one_for_one",
        "max_restarts": 1_000_000,
        "within_s": 1,
        "agents": [{"name": name, "agent": agent} for name in names],
    }
    if senders:
        spec["access"] = {"allow": [{"from": list(senders), "to": ["*"]}]}
    return await mesh.team(spec)


class Killer:
    """Kills a random live agent of a group now and then, never the same incarnation twice."""

    def __init__(self, mesh: Mesh, names: Sequence[str], rng: random.Random) -> None:
        self.kills = 0
        self._mesh = mesh
        self._names = set(names)
        self._rng = rng
        self._killed: set[str] = set()

    async def run(self, *, every_s: float) -> None:
        """Kill one agent every `every_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            await self.kill_one()

    async def kill_one(self) -> str | None:
        """Kill one live agent of the group (with ``ray.kill``); return its incarnation."""
        alive = [info for info in (await incarnations(self._mesh)).values()
                 if info.name in self._names and info.incarnation not in self._killed]  # fmt: skip
        if not alive:
            return None
        victim = self._rng.choice(alive)
        try:
            handle = await self._mesh.actor(victim.name)
        except MeshError:
            return None
        ray.kill(handle)
        self._killed.add(victim.incarnation)
        self.kills += 1
        return str(victim.incarnation)


async def while_killing(
    mesh: Mesh,
    names: Sequence[str],
    rng: random.Random,
    lane: Callable[[], Awaitable[None]],
    *,
    lanes: int,
    every_s: float,
) -> tuple[int, float]:
    """Run `lanes` copies of `lane` while one of `names` is killed every `every_s` seconds.

    Returns:
        The agents killed, and the seconds the lanes took.
    """
    started = time.monotonic()
    killer = Killer(mesh, names, rng)
    killing = asyncio.create_task(killer.run(every_s=every_s))
    try:
        await asyncio.gather(*(lane() for _ in range(lanes)))
    finally:
        killing.cancel()
    return killer.kills, time.monotonic() - started


async def incarnations(mesh: Mesh) -> dict[str, Any]:
    """Return the registered agents' entries by name (empty while the registry restarts)."""
    try:
        return {info.name: info for info in await mesh.agents()}
    except MeshError:
        return {}


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> float | None:
    """Poll `check` until it holds; return the seconds it took, or None if it never did."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    return None


def error_name(exc: MeshError) -> str:
    """Name an error by its type, and a handler's error by the type it carries too."""
    if isinstance(exc, HandlerError):
        return f"HandlerError({exc.remote_type})"
    return type(exc).__name__
