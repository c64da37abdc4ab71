"""Supervision: time from killing an agent to its restarted incarnation answering.

The agent runs under a one_for_one team. Each round kills its actor with ``ray.kill``
and asks it again and again until the new incarnation replies; the figure includes
death detection, the supervisor's decision, a new Ray actor, registration, and the
asker finding the successor.
"""

from __future__ import annotations

import asyncio
import time

import ray

from benchmarks.watchdogs import Done, Latency, Looper, latency
from mesh import DeliveryError, Mesh


async def _incarnation(mesh: Mesh, name: str) -> str | None:
    found = [a.incarnation for a in await mesh.agents() if a.name == name]
    return found[0] if found else None


async def kill_to_answer(mesh: Mesh, *, repeats: int) -> Latency:
    """Kill a supervised agent `repeats` times; return the time to its next answer."""
    name = f"phoenix-{time.time_ns() % 10**9}"
    team = await mesh.team({
        "name": f"bench-{name}",
        "max_restarts": repeats + 1,
        "within_s": 3600,
        "agents": [{"name": name, "agent": Looper}],
    })  # fmt: skip
    seconds = []
    try:
        for _ in range(repeats):
            old = await _incarnation(mesh, name)
            ray.kill(await mesh.actor(name))
            killed = time.perf_counter()
            # ray.kill is asynchronous: an ask right after it may still reach the old
            # incarnation, so count only an answer from a new one.
            while True:
                try:
                    await mesh.ask(name, Done(), timeout=2)
                    if await _incarnation(mesh, name) not in (old, None):
                        break
                except DeliveryError:
                    pass
                await asyncio.sleep(0.01)
            seconds.append(time.perf_counter() - killed)
    finally:
        await team.stop()
    return latency("kill to answer", 1, seconds)
