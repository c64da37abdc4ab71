"""A starved host is not a hung one: under CPU starvation no healthy agent is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _rel_agents import Count, Counted, Hold, Holder

from mesh import Mesh, MeshError, OutcomeUnknownError, TeamHandle

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Busy processes per core: the load averages of over 100 that replaced healthy agents.
BUSY_PER_CORE = 12
STARVED_S = 20.0


@contextlib.contextmanager
def _starved_cpu() -> Iterator[list[int]]:
    """Busy-loop processes on every core, ended by their pids when the block ends."""
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 1) * BUSY_PER_CORE)
    ]
    try:
        yield [p.pid for p in busy]
    finally:
        for process in busy:
            os.kill(process.pid, signal.SIGKILL)
        for process in busy:
            process.wait()


async def _team(mesh: Mesh, names: list[str]) -> TeamHandle:
    return await mesh.team({"name": f"starved-{uuid.uuid4().hex[:6]}", "max_restarts": 10,
                            "within_s": 60,
                            "agents": [{"name": n, "agent": Holder} for n in names],
                            "access": {"allow": [{"from": ["*"], "to": ["*"]}]}})  # fmt: skip


async def _restarts(team: TeamHandle) -> dict[str, int]:
    return {row["name"]: row["restarts"] for row in await team.members()}


async def _last_exit(team: TeamHandle, name: str) -> dict[str, Any] | None:
    (row,) = [row for row in await team.members() if row["name"] == name]
    last: dict[str, Any] | None = row["last_exit"]
    return last


@pytest.mark.timeout(300)
async def test_no_healthy_agent_is_replaced_while_the_cpu_is_starved(mesh: Mesh) -> None:
    # Before: the supervisor took a starved control lane (slow to answer, its loop
    # late) for a hung one, and killed healthy agents.
    names = [f"calm-{i}-{uuid.uuid4().hex[:4]}" for i in range(4)]
    team = await _team(mesh, names)
    try:
        with _starved_cpu():
            ends = time.monotonic() + STARVED_S
            while time.monotonic() < ends:
                for name in names:  # light work, as an LLM agent waiting on its model
                    with contextlib.suppress(MeshError):
                        await mesh.ask(name, Count(), expect=Counted, timeout=10)
                await asyncio.sleep(0.5)
            during = await _restarts(team)
        await asyncio.sleep(3)  # what the starvation set off would show now
        assert during == await _restarts(team) == dict.fromkeys(names, 0)
    finally:
        await team.stop()


@pytest.mark.timeout(300)
async def test_a_blocked_loop_is_still_replaced_while_the_cpu_is_starved(mesh: Mesh) -> None:
    name = f"frozen-{uuid.uuid4().hex[:4]}"
    team = await _team(mesh, [name])
    try:
        with _starved_cpu():
            # Blocks its event loop for good; on a starved machine the kill may come
            # before the tell's acceptance does, which then ends as that typed error.
            with contextlib.suppress(OutcomeUnknownError):
                await mesh.tell(name, Hold(seconds=300))
            ends = time.monotonic() + 90
            while (exit_ := await _last_exit(team, name)) is None:
                assert time.monotonic() < ends, "the blocked agent was not killed in 90 s"
                await asyncio.sleep(0.5)
        assert "stuck: its event loop is blocked" in exit_["reason"]
        # The exit records how far starvation had stretched the limits it was judged by.
        assert exit_["stretch"] > 1.0
    finally:
        await team.stop()
