"""Supervision: time from killing an agent to its restarted incarnation answering.

The agent runs under a one_for_one team. Each round kills its actor with ``ray.kill``
and asks it again and again until the new incarnation replies; the figure includes
death detection, the supervisor's decision, a new Ray actor, registration, and the
asker finding the successor.

The asks that meet the dead agent are expected faults: each is a dead letter at the
driver, counted by reason in the result (the bench turns their log lines off).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import ray

from benchmarks.watchdogs import Done, Latency, Looper, latency
from mesh import DeliveryError, Mesh, MeshError, TeamHandle

#: How long one restart may take before the suite gives up on it: far past the seconds a
#: restart takes, even on a loaded machine, and short of a CI job's patience.
RESTART_WITHIN_S = 60.0


async def _incarnation(mesh: Mesh, name: str) -> str | None:
    found = [a.incarnation for a in await mesh.agents() if a.name == name]
    return found[0] if found else None


async def _answered_anew(
    mesh: Mesh, name: str, old: str | None, team: TeamHandle, *, within_s: float = RESTART_WITHIN_S
) -> None:
    """Ask `name` until an incarnation other than `old` answers; fail after `within_s`.

    ``ray.kill`` is asynchronous: an ask right after it may still reach the old
    incarnation, so only an answer from a new one counts.
    """
    until = time.perf_counter() + within_s
    while time.perf_counter() < until:
        try:
            await mesh.ask(name, Done(), timeout=2)
            if await _incarnation(mesh, name) not in (old, None):
                return
        except DeliveryError:
            pass
        await asyncio.sleep(0.01)
    raise MeshError(
        f"no new incarnation of {name!r} answered within {within_s:g}s of its kill; "
        f"its team's members: {await team.members()}",
        agent=name,
        hint="a starved machine starts Ray workers slowly: see the members' last_exit",
    )


@dataclass(frozen=True)
class Restarts:
    """Kill-to-answer latency, and the dead letters the kills caused, by reason."""

    latency: Latency
    dead_letters: dict[str, int]


async def kill_to_answer(
    mesh: Mesh, *, repeats: int, on_step: Callable[[str], None] | None = None
) -> Restarts:
    """Kill a supervised agent `repeats` times; return the time to its next answer."""
    on_step = on_step or (lambda _text: None)
    before = mesh.dead_letter_counts
    name = f"phoenix-{time.time_ns() % 10**9}"
    team = await mesh.team({
        "name": f"bench-{name}",
        "max_restarts": repeats + 1,
        "within_s": 3600,
        "agents": [{"name": name, "agent": Looper}],
    })  # fmt: skip
    seconds = []
    try:
        for i in range(repeats):
            on_step(f"kill {i + 1} of {repeats}")
            old = await _incarnation(mesh, name)
            ray.kill(await mesh.actor(name))
            killed = time.perf_counter()
            await _answered_anew(mesh, name, old, team)
            seconds.append(time.perf_counter() - killed)
    finally:
        await team.stop()
    after = mesh.dead_letter_counts
    caused = {reason: n - before.get(reason, 0) for reason, n in after.items()}
    return Restarts(
        latency("kill to answer", 1, seconds), {r: n for r, n in caused.items() if n > 0}
    )
