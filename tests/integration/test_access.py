"""Team access rules enforced by receiving hosts on a real Ray, with typed refusals."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from _agents import CallPeer, Guarded, Outcome, Ping, Pong
from conftest import Spawn

from mesh import AccessDeniedError, Mesh, TeamHandle

pytestmark = pytest.mark.ray

_ids = itertools.count()
GUARDED = "_agents:Guarded"
StartTeam = Callable[[dict[str, Any]], Awaitable[TeamHandle]]


@pytest.fixture
async def start_team(mesh: Mesh) -> AsyncIterator[StartTeam]:
    started: list[TeamHandle] = []

    async def _start(spec: dict[str, Any]) -> TeamHandle:
        team = await mesh.team(spec)
        started.append(team)
        return team

    yield _start
    for team in reversed(started):
        await team.stop()


async def _outcome(mesh: Mesh, caller: str, peer: str) -> str:
    result = await mesh.ask(caller, CallPeer(peer=peer, seconds=0), expect=Outcome, timeout=10)
    return result.error_type


async def test_rules_decide_who_reaches_whom_within_and_across_teams(
    mesh: Mesh, start_team: StartTeam, spawn: Spawn
) -> None:
    n = next(_ids)
    lead, worker, quiet = f"lead-{n}", f"worker-{n}", f"quiet-{n}"
    ally, stranger = f"ally-{n}", f"stranger-{n}"
    await start_team({
        "name": f"acl-a-{n}",
        "agents": [{"name": lead, "agent": GUARDED, "role": "orchestrator"},
                   {"name": worker, "agent": GUARDED, "role": "worker"},
                   {"name": quiet, "agent": GUARDED}],
        "access": {"within": "closed", "allow": [
            {"from": ["role:orchestrator", ally], "to": ["role:worker"],
             "types": ["test.sleep/1"]},
        ]},
    })  # fmt: skip
    await start_team({"name": f"acl-b-{n}",
                      "agents": [{"name": ally, "agent": GUARDED},
                                 {"name": stranger, "agent": GUARDED}]})  # fmt: skip
    lone = (await spawn(Guarded, "lone")).name

    assert await _outcome(mesh, lead, worker) == ""  # a role allowed to
    assert await _outcome(mesh, ally, worker) == ""  # another team's agent, by name
    assert await _outcome(mesh, ally, stranger) == ""  # open inside team b
    refused = [(lead, quiet), (worker, lead), (stranger, worker), (lone, worker), (lead, ally)]
    assert [await _outcome(mesh, a, b) for a, b in refused] == ["AccessDeniedError"] * 5
    # The edge reaches every agent of a team by default; refusals were counted.
    assert await mesh.ask(quiet, Ping(text="hi"), expect=Pong) == Pong(text=f"{quiet} saw hi")
    stats = await mesh.stats(worker)
    assert stats.refusals == {"access": 2}


async def test_a_team_closed_to_drivers_refuses_their_asks_and_tells(
    mesh: Mesh, start_team: StartTeam
) -> None:
    n = next(_ids)
    front, back = f"front-{n}", f"back-{n}"
    await start_team({
        "name": f"acl-c-{n}",
        "agents": [{"name": front, "agent": GUARDED}, {"name": back, "agent": GUARDED}],
        "access": {"edge": False, "allow": [{"from": ["edge"], "to": [front],
                                             "types": ["test.call_peer/1"]}]},
    })  # fmt: skip
    with pytest.raises(AccessDeniedError, match=f"may not send 'test.ping/1' to '{back}'"):
        await mesh.ask(back, Ping(text="hi"), timeout=10)
    with pytest.raises(AccessDeniedError):
        await mesh.tell(back, Ping(text="hi"))
    with pytest.raises(AccessDeniedError):
        await mesh.ask(front, Ping(text="hi"), timeout=10)
    assert await _outcome(mesh, front, back) == ""  # the allowed entry, then inside the team
