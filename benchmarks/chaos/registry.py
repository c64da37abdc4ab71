"""Registry killed during direct traffic: it is off the data path, and hosts re-register.

Agents talk in a ring over their own links while the registry actor is killed (and
restarted empty by Ray). No agent-to-agent ask may fail; every agent must be listed
again within a few seconds of each kill, by its lease renewal finding itself unknown.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayError

from benchmarks.chaos._agents import Chatted, Chatter, Progress, StopChatter, Talker
from benchmarks.chaos._figure import Figure, as_s
from benchmarks.chaos._support import eventually, unique
from benchmarks.percentiles import percentile
from mesh.datapath import REGISTRY_NAME
from mesh.edge import Mesh

__all__ = ["RegistryFigures", "registry_killed"]

#: How long after a kill every agent must be registered again.
REREGISTER_WITHIN_S = 5.0


@dataclass
class RegistryFigures:
    """Traffic and re-registration across registry kills."""

    agents: int
    kills: int = 0
    messages: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Kills after which every agent registered again (at any time), and within the target.
    returned: int = 0
    reregistered: int = 0
    reregister_median_s: float | None = None
    reregister_max_s: float | None = None
    seconds: float = 0.0

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"registry killed {self.kills} times during traffic between {self.agents} agents"
        failed = sum(self.failed.values())
        detail = ", ".join(f"{e} {n}" for e, n in sorted(self.failed.items()))
        return [
            Figure(name, "agent-to-agent asks answered", f"{self.messages:,}"),
            Figure(
                name,
                "agent-to-agent asks failed",
                f"{failed}{f' ({detail})' if detail else ''}",
                "0",
                failed == 0,
            ),
            Figure(
                name,
                f"kills after which all re-registered within {REREGISTER_WITHIN_S:g} s",
                f"{self.reregistered}/{self.kills}",
                "all",
                self.reregistered == self.kills,
            ),
            Figure(
                name,
                "re-registration: median / max",
                f"{as_s(self.reregister_median_s)} / {as_s(self.reregister_max_s)}",
            ),
        ]


async def registry_killed(
    mesh: Mesh, *, kills: int, agents: int = 4, window: int = 4
) -> RegistryFigures:
    """Kill the registry `kills` times while `agents` agents ask each other in a ring."""
    names = [unique("talk") for _ in range(agents)]
    for name in names:
        await mesh.spawn(Talker, name=name)
    figures = RegistryFigures(agents=agents)
    started = time.monotonic()
    try:
        chatting = [
            asyncio.create_task(_chatter(mesh, name, names[(i + 1) % agents], window))
            for i, name in enumerate(names)
        ]

        async def all_talking() -> bool:
            done = [await mesh.ask(n, Progress(), timeout=10, expect=Progress) for n in names]
            return all(p.done > 0 for p in done)

        await eventually(all_talking, within=30)
        took = await _kill_registry(mesh, names, kills)
        for name in names:
            await mesh.tell(name, StopChatter())
        for chatted in await asyncio.gather(*chatting):
            figures.messages += chatted.ok
            for error, count in chatted.failed.items():
                figures.failed[error] = figures.failed.get(error, 0) + count
    finally:
        figures.seconds = time.monotonic() - started
        for name in names:
            await mesh.stop(name)
    figures.kills = len(took)
    back = [t for t in took if t is not None]
    figures.returned = len(back)
    figures.reregistered = sum(1 for t in back if t <= REREGISTER_WITHIN_S)
    figures.reregister_median_s = percentile(back, 0.5)
    figures.reregister_max_s = max(back, default=None)
    return figures


async def _chatter(mesh: Mesh, name: str, peer: str, window: int) -> Chatted:
    return await mesh.ask(name, Chatter(peer=peer, window=window), timeout=3600, expect=Chatted)


async def _kill_registry(mesh: Mesh, names: list[str], kills: int) -> list[float | None]:
    """Kill the registry `kills` times; return how long each took to list `names` again."""
    took: list[float | None] = []
    registry = ray.get_actor(REGISTRY_NAME, namespace=mesh.config.namespace)

    async def all_listed() -> bool:
        # The actor itself, not a client that backs off: the figure is the agents' delay.
        try:
            rows: list[tuple[dict[str, Any], Any]] = await asyncio.wait_for(
                registry.find.remote(None, None, None), 1.0
            )
        except (TimeoutError, RayError):
            return False
        return set(names) <= {row[0]["name"] for row in rows}

    async def some_missing() -> bool:
        return not await all_listed()

    for _ in range(kills):
        killed = time.monotonic()
        ray.kill(registry, no_restart=False)  # Ray restarts it, empty
        # Until the kill lands, the old registry still lists everyone: wait to see it
        # gone (or answering without them) before timing the way back.
        if await eventually(some_missing, within=10) is None:
            took.append(None)
            continue
        back = await eventually(all_listed, within=30)
        took.append(None if back is None else time.monotonic() - killed)
        await asyncio.sleep(0.5)  # let the traffic run on a settled registry too
    return took
