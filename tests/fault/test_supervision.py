"""Supervisors on real Ray: strategies, restart types, intensity, shutdown order, deaths."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import ray
from _agents import Block, Boom, Die, Ping, Pong, Quit, Sleep

from mesh import (
    ConfigError,
    DeadlineExceededError,
    HandlerError,
    Mesh,
    PeerDeadError,
    RestartIntensityError,
    TeamHandle,
)

pytestmark = pytest.mark.ray

MEMBER = "_agents:Member"
_teams = itertools.count()

StartTeam = Callable[..., Awaitable[TeamHandle]]


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


def _team(names: list[str], **fields: Any) -> dict[str, Any]:
    restart = fields.pop("restart", {})
    options = fields.pop("options", {})
    return {
        "agents": [
            {"name": n, "agent": MEMBER, "restart": restart.get(n, "permanent"), "options": options}
            for n in names
        ],
        **fields,
    }


@pytest.fixture
async def start_team(mesh: Mesh) -> AsyncIterator[StartTeam]:
    """Start teams with names unique to the test; stop them when it ends."""
    started: list[TeamHandle] = []

    async def _start(spec: dict[str, Any]) -> TeamHandle:
        team = await mesh.team({"name": f"t{next(_teams)}", **spec})
        started.append(team)
        return team

    yield _start
    for team in reversed(started):
        await team.stop()


async def _incarnations(team: TeamHandle) -> dict[str, str | None]:
    rows = await team.members()
    return {row["name"]: row["incarnation"] for row in rows if row["kind"] == "agent"}


async def _replaced(team: TeamHandle, before: dict[str, str | None], names: set[str]) -> None:
    async def done() -> bool:
        now = await _incarnations(team)
        return all(now.get(n) not in (None, before[n]) for n in names)

    # A starved machine stretches the limits a supervisor proves a hang by (at most 20x
    # stuck_after_s, `Starvation`); an idle one replaces a blocked loop within a second.
    await _eventually(done, within=45)


def _unique(prefix: str) -> list[str]:
    n = next(_teams)
    return [f"{prefix}{n}-{c}" for c in "abc"]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [("one_for_one", {1}), ("one_for_all", {0, 1, 2}), ("rest_for_one", {1, 2})],
)
async def test_strategy_restarts_the_right_children(
    mesh: Mesh, start_team: StartTeam, strategy: str, restarted: set[int]
) -> None:
    names = _unique(strategy[:4])
    team = await start_team(_team(names, strategy=strategy))
    before = await _incarnations(team)
    ray.kill(await mesh.actor(names[1]))
    await _replaced(team, before, {names[i] for i in restarted})
    after = await _incarnations(team)
    for i, name in enumerate(names):
        assert (after[name] != before[name]) == (i in restarted), (strategy, name)
    for name in names:
        assert await mesh.ask(name, Ping(), timeout=10, expect=Pong)


async def test_a_restarted_agent_answers_under_its_name_and_in_flight_asks_fail(
    mesh: Mesh, start_team: StartTeam
) -> None:
    names = _unique("inflight")
    team = await start_team(_team(names))
    before = await _incarnations(team)
    asking = asyncio.create_task(mesh.ask(names[0], Sleep(seconds=30), timeout=30))
    await asyncio.sleep(0.3)
    killed = time.monotonic()
    ray.kill(await mesh.actor(names[0]))
    with pytest.raises(PeerDeadError):
        await asking
    assert time.monotonic() - killed < 5
    await _replaced(team, before, {names[0]})
    first = await mesh.ask(names[0], Ping(), timeout=10, expect=Pong)
    assert first.text.startswith(f"{names[0]}:")
    rows = {r["name"]: r for r in await team.members()}
    assert rows[names[0]]["restarts"] == 1
    assert rows[names[1]]["restarts"] == 0


@pytest.mark.parametrize("cause", ["os_exit", "crash_on_error"])
async def test_deaths_from_inside_are_detected_and_restarted(
    mesh: Mesh, start_team: StartTeam, cause: str
) -> None:
    names = _unique("inside")
    team = await start_team(_team(names))
    before = await _incarnations(team)
    if cause == "os_exit":
        with pytest.raises(PeerDeadError):
            await mesh.ask(names[0], Die(), timeout=10)
    else:
        with pytest.raises(HandlerError, match="crash: bad state"):
            await mesh.ask(names[0], Boom(text="bad state"), timeout=10)
    await _replaced(team, before, {names[0]})
    assert await mesh.ask(names[0], Ping(), timeout=10, expect=Pong)


async def test_a_stuck_event_loop_is_killed_and_restarted(
    mesh: Mesh, start_team: StartTeam
) -> None:
    names = _unique("stuck")
    team = await start_team(_team(names))
    before = await _incarnations(team)
    # The ask ends by its own deadline, or as the stuck host is killed under it.
    with pytest.raises((DeadlineExceededError, PeerDeadError)):
        await mesh.ask(names[0], Block(seconds=60), timeout=0.5)
    await _replaced(team, before, {names[0]})
    assert await mesh.ask(names[0], Ping(), timeout=10, expect=Pong)


async def test_restart_types_decide_who_comes_back(mesh: Mesh, start_team: StartTeam) -> None:
    perm, trans, temp = _unique("types")
    restart = {perm: "permanent", trans: "transient", temp: "temporary"}
    team = await start_team(_team([perm, trans, temp], restart=restart))
    before = await _incarnations(team)

    # A normal exit: permanent comes back, transient does not.
    await mesh.tell(perm, Quit())
    await mesh.tell(trans, Quit())
    await _replaced(team, before, {perm})

    async def transient_down() -> bool:
        rows = {r["name"]: r for r in await team.members()}
        return rows[trans]["running"] is False

    await _eventually(transient_down, within=10)
    # A kill: temporary does not come back and leaves the team.
    ray.kill(await mesh.actor(temp))

    async def temporary_gone() -> bool:
        return temp not in {r["name"] for r in await team.members()}

    await _eventually(temporary_gone, within=10)
    rows = {r["name"]: r for r in await team.members()}
    assert rows[perm]["restarts"] == 1
    assert rows[trans]["restarts"] == 0


async def test_transient_child_is_restarted_after_an_abnormal_exit(
    mesh: Mesh, start_team: StartTeam
) -> None:
    names = _unique("trans")
    team = await start_team(_team(names, restart=dict.fromkeys(names, "transient")))
    before = await _incarnations(team)
    ray.kill(await mesh.actor(names[2]))
    await _replaced(team, before, {names[2]})


async def test_intensity_escalates_through_two_levels_to_the_top(
    mesh: Mesh, start_team: StartTeam
) -> None:
    inner_name = f"x{next(_teams)}"
    spec = {
        "max_restarts": 1,
        "within_s": 60,
        "agents": [{"name": f"{inner_name}-top", "agent": MEMBER}],
        "teams": [
            {
                "name": f"{inner_name}-inner",
                "max_restarts": 1,
                "within_s": 60,
                "agents": [{"name": inner_name, "agent": MEMBER}],
            }
        ],
    }
    team = await start_team(spec)

    async def kill_and_wait_back() -> None:
        before = await _incarnations(team)
        ray.kill(await mesh.actor(inner_name))
        await _replaced(team, before, {inner_name})

    await kill_and_wait_back()  # inner restart 1: within its intensity
    await kill_and_wait_back()  # inner restart 2: inner gives up; top restarts it (1)
    rows = {r["name"]: r for r in await team.members()}
    assert rows[f"{inner_name}-inner"]["restarts"] == 1
    await kill_and_wait_back()  # a fresh inner: restart 1 again
    ray.kill(await mesh.actor(inner_name))  # inner gives up again; top is past its intensity
    with pytest.raises(RestartIntensityError, match="gave up") as caught:
        await asyncio.wait_for(team.wait(), 20)
    assert caught.value.agent == team.name

    async def all_gone() -> bool:
        names = {a.name for a in await mesh.agents()}
        return not names & {inner_name, f"{inner_name}-top"}

    await _eventually(all_gone, within=10)


async def test_shutdown_stops_children_in_reverse_start_order(
    mesh: Mesh, start_team: StartTeam, tmp_path: Path
) -> None:
    record, started = tmp_path / "stopped.txt", tmp_path / "started.txt"
    n = next(_teams)
    a, b, c, d = (f"order{n}-{x}" for x in "abcd")
    options = {"record": str(record), "started": str(started)}
    team = await start_team({
        "agents": [{"name": a, "agent": MEMBER, "options": options},
                   {"name": b, "agent": MEMBER, "options": options}],
        "teams": [{"name": f"order{n}-sub",
                   "agents": [{"name": c, "agent": MEMBER, "options": options},
                              {"name": d, "agent": MEMBER, "options": options}]}],
    })  # fmt: skip
    # The agents' processes are created at once, the agents started one by one.
    assert started.read_text().split() == [a, b, c, d]
    await team.stop()
    assert record.read_text().split() == [d, c, b, a]


async def test_no_agent_after_one_that_failed_to_start_is_started(
    mesh: Mesh, tmp_path: Path
) -> None:
    record, started = tmp_path / "stopped.txt", tmp_path / "started.txt"
    a, b, c = _unique("failed")
    options = {"record": str(record), "started": str(started)}
    with pytest.raises(ConfigError, match="no database"):
        await mesh.team({"name": f"t{next(_teams)}", "agents": [
            {"name": a, "agent": MEMBER, "options": options},
            {"name": b, "agent": "_agents:FailingStart"},
            {"name": c, "agent": MEMBER, "options": options},
        ]})  # fmt: skip
    assert started.read_text().split() == [a]
    assert record.read_text().split() == [a]  # stopped again when the team gave up
    assert not {a, b, c} & {info.name for info in await mesh.agents()}
