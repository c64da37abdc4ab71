"""The supervisor's health watch tells a silent child from its own stall (no Ray).

The child is a stand-in for a host's control lane. A stalled supervisor (a starved
process) has not even sent its call until it runs again, so the child's answer comes
only after the stall: that time is the supervisor's, not the child's silence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from benchmarks.chaos._agents import Worker
from mesh import MeshConfig
from mesh.control._supervisor import Supervisor, _Child
from mesh.control._team import AgentSpec


class _Lane:
    """health.remote(): each call is a future the test answers (or never does)."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Future[dict[str, Any]]] = []

    def remote(self) -> asyncio.Future[dict[str, Any]]:
        call: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.calls.append(call)
        return call

    def answer_soon(self) -> None:
        loop = asyncio.get_running_loop()
        for call in self.calls:
            if not call.done():
                loop.call_later(0.1, call.set_result, {"healthy": True, "loop_lag_s": 0.0})


class _Host:
    def __init__(self) -> None:
        self.health = _Lane()


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> tuple[Supervisor, _Child, list[str]]:
    monkeypatch.setattr("mesh.control._supervisor.ray.kill", lambda _handle: None)
    # An idle node, whatever this machine's load: the limits are not stretched by it.
    monkeypatch.setattr("mesh.control._supervisor._load_per_cpu", lambda: 0.0)
    supervisor = Supervisor()
    supervisor._config = MeshConfig(stuck_after_s=0.4)  # silent after 0.6 s
    child = _Child(spec=AgentSpec(name="worker", agent=Worker),
                   handle=_Host(), incarnation="i1")  # fmt: skip
    supervisor._children["worker"] = child
    replaced: list[str] = []
    monkeypatch.setattr(supervisor, "_replace_soon", lambda _n, _c, why, _s: replaced.append(why))
    return supervisor, child, replaced


async def test_a_stalled_supervisor_does_not_take_its_own_stall_for_silence(
    supervisor: tuple[Supervisor, _Child, list[str]],
) -> None:
    watcher, child, replaced = supervisor
    lane = child.handle.health
    watching = asyncio.create_task(watcher._watch_health())
    for _ in range(3):  # healthy rounds
        await asyncio.sleep(0.3)
        lane.answer_soon()
    time.sleep(1.0)  # noqa: ASYNC251 -- the supervisor's own stall, longer than the limit
    await asyncio.sleep(0)
    lane.answer_soon()  # the answer leaves once the supervisor runs again
    await asyncio.sleep(0.5)
    watcher._stopping = True
    await watching
    assert replaced == []
    assert not child.stuck


async def test_a_lane_that_never_answers_is_taken_for_stuck(
    supervisor: tuple[Supervisor, _Child, list[str]],
) -> None:
    watcher, child, replaced = supervisor
    watching = asyncio.create_task(watcher._watch_health())
    await asyncio.sleep(1.2)
    watcher._stopping = True
    await watching
    assert child.stuck
    assert len(replaced) == 1
    assert "has not answered" in replaced[0]
