"""Hub vs mesh patterns: the same task, N agents on the offline model, end to end.

Each conversation is one `Task` to a `PatternConductor`: the hub pattern sends the task
to the N agents (one request each) and has one assemble; the mesh-review pattern has
each of the N agents draft a share and ask every other agent for a review directly,
then one assembles. Both are driven the same way (a fixed number of conversations at
a fixed concurrency), so conversations per second and messages per conversation
(messages handled by every participant, the conductor's task included) compare the
patterns' cost on the runtime, and their ratio says what direct peer review costs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from actors import PatternAgent
from mesh import Mesh
from mesh.control import PatternConductor
from protocols import Result, Task

__all__ = ["Row", "ratios", "run"]


@dataclass(frozen=True)
class Row:
    """One pattern at one N: throughput and messages per conversation."""

    pattern: str
    agents: int
    conversations: int
    concurrency: int
    per_s: float
    messages_per_conversation: float


async def _handled(mesh: Mesh, names: list[str]) -> int:
    stats = await asyncio.gather(*(mesh.stats(name) for name in names))
    return sum(s.handled for s in stats)


async def _measure(
    mesh: Mesh, pattern: dict[str, Any], peers: list[str], *, name: str,
    conversations: int, concurrency: int,
) -> Row:  # fmt: skip
    conductor = f"{name}-conductor"
    await mesh.spawn(PatternConductor, name=conductor, pattern=pattern)
    try:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await mesh.ask(conductor, Task(text=f"review change {i}"), timeout=120,
                               expect=Result)  # fmt: skip

        await one(-1)  # warm the links and the model clients
        everyone = [*peers, conductor]
        before = await _handled(mesh, everyone)
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(conversations)))
        elapsed = time.perf_counter() - start
        messages = await _handled(mesh, everyone) - before
    finally:
        await mesh.stop(conductor)
    return Row(str(pattern["name"]), len(peers), conversations, concurrency,
               conversations / elapsed, messages / conversations)  # fmt: skip


async def run(
    mesh: Mesh, *, agents: tuple[int, ...] = (2, 4, 8), conversations: int = 20,
    concurrency: int = 4, latency_s: float = 0.0,
) -> list[Row]:  # fmt: skip
    """Measure the hub and the mesh-review patterns at each N.

    Args:
        mesh: Where to spawn the agents.
        agents: The values of N.
        conversations: Conversations per measurement.
        concurrency: Conversations in flight at once.
        latency_s: Seconds each offline model call takes.
    """
    rows: list[Row] = []
    suffix = str(time.time_ns())[-9:]
    for n in agents:
        role = f"bench-peer-{suffix}-{n}"
        peers = [f"{role}-{i}" for i in range(n)]
        for peer in peers:
            await mesh.spawn(PatternAgent, name=peer, role=role,
                             model=f"offline:{peer}?latency_s={latency_s}")  # fmt: skip
        try:
            hub: dict[str, Any] = {"name": "hub", "routes": [role] * n, "assembler": peers[0]}
            mesh_review: dict[str, Any] = {
                "name": "mesh_review",
                "peers": peers,
                "assembler": peers[0],
            }
            for pattern in (hub, mesh_review):
                rows.append(
                    await _measure(mesh, pattern, peers, name=f"{role}-{pattern['name']}",
                                   conversations=conversations, concurrency=concurrency)
                )  # fmt: skip
        finally:
            for peer in peers:
                await mesh.stop(peer)
    return rows


def ratios(rows: list[Row]) -> dict[int, dict[str, float]]:
    """Return, per N, mesh over hub for conversations/s and for messages per conversation."""
    by = {(r.pattern, r.agents): r for r in rows}
    out: dict[int, dict[str, float]] = {}
    for n in sorted({r.agents for r in rows}):
        hub, mesh = by.get(("hub", n)), by.get(("mesh_review", n))
        if hub and mesh:
            messages = mesh.messages_per_conversation / hub.messages_per_conversation
            out[n] = {"per_s": mesh.per_s / hub.per_s, "messages": messages}
    return out
