"""Dedup of resent messages, at-least-once sends, and agent state that survives a restart."""

from __future__ import annotations

import asyncio
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import ray
from _agents import Echo, GetNotes, Note, Notes
from _hostcalls import deliver, request
from _rel_agents import Count, Counted, Counter
from conftest import Spawn

from benchmarks.chaos import exactly_once
from mesh import DuplicateMessageError, Mesh, MeshError, TeamHandle
from protocols import Codec, Envelope, Kind

pytestmark = pytest.mark.ray

_codec = Codec()


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


def _frame(kind: Kind, recipient: str, msg: Any, *, to: str,
           **fields: Any) -> tuple[Envelope, bytes]:  # fmt: skip
    """Return a frame for incarnation `to` of `recipient`, as a resending sender makes it."""
    env = Envelope(kind=kind, type=msg.type_tag, sender="resender", recipient=recipient,
                   payload=_codec.encode_message(msg), to_incarnation=to, **fields)  # fmt: skip
    return env, _codec.encode(env)


@pytest.fixture
async def counter(mesh: Mesh) -> AsyncIterator[tuple[str, TeamHandle]]:
    """A durable `Counter` under a one_for_one supervisor, open to the tests' raw frames."""
    name = f"counter-{uuid.uuid4().hex[:6]}"
    team = await mesh.team({"name": f"t-{name}", "max_restarts": 10, "within_s": 60,
                            "agents": [{"name": name, "agent": Counter}],
                            "access": {"allow": [{"from": ["*"], "to": ["*"]}]}})  # fmt: skip
    yield name, team
    await team.stop()


async def _incarnation(mesh: Mesh, name: str) -> str | None:
    try:
        host = await mesh.actor(name)
        incarnation: str = await host.ping.remote()
    except (MeshError, ray.exceptions.RayError):
        return None
    return incarnation


async def _gone(mesh: Mesh, name: str, old: str) -> bool:
    # ray.kill returns at once; the old process may still answer for a moment.
    return (await _incarnation(mesh, name)) != old


async def _restarted(mesh: Mesh, name: str, old: str) -> None:
    async def replaced() -> bool:
        return (await _incarnation(mesh, name)) not in (None, old)

    await _eventually(replaced)


async def test_a_resent_tell_is_taken_once_counted_and_dead_lettered(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dedup")
    host = await mesh.actor(echo.name)
    env, frame = _frame(Kind.TELL, echo.name, Note(seq=7), to=echo.incarnation)
    assert await deliver(host, "resender#1", 0, [frame]) == (None, [])
    assert await deliver(host, "resender#1", 1, [frame]) == (None, [])  # taken, not queued
    assert await mesh.ask(echo.name, GetNotes(), expect=Notes) == Notes(
        seqs=[7], senders=["resender"]
    )
    stats = await mesh.stats(echo.name)
    assert stats.duplicates == 1
    (letter,) = [d for d in await mesh.dead_letters(echo.name) if d.reason == "duplicate"]
    assert letter.message_id == env.id


async def test_a_resent_ask_gets_duplicate_message_error_not_a_second_run(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dedup-ask")
    host = await mesh.actor(echo.name)
    _, note = _frame(Kind.TELL, echo.name, Note(seq=1), to=echo.incarnation)
    await deliver(host, "resender#1", 0, [note])
    env, frame = _frame(Kind.ASK, echo.name, GetNotes(), to=echo.incarnation,
                        deadline=time.time() + 10)  # fmt: skip
    first = _codec.decode(await request(host, "resender#1", 1, frame))
    assert first.kind is Kind.REPLY
    again = _codec.decode(await request(host, "resender#1", 2, frame))
    assert again.kind is Kind.ERROR
    assert again.correlation_id == env.id
    with pytest.raises(DuplicateMessageError):
        mesh._edge.open_reply(again, None)


async def test_state_survives_a_kill_and_the_conversation_goes_on_counting(
    mesh: Mesh, counter: tuple[str, TeamHandle]
) -> None:
    name, _team = counter
    values = [(await mesh.ask(name, Count(), expect=Counted)).value for _ in range(3)]
    assert values == [1, 2, 3]
    old = await _incarnation(mesh, name)
    assert old is not None
    ray.kill(await mesh.actor(name))  # mid-conversation, no warning
    await _eventually(lambda: _gone(mesh, name, old))
    # The next ask waits out the restart (same message id on each resend).
    after = await mesh.ask(name, Count(), expect=Counted, timeout=30, at_least_once=True)
    assert after.incarnation_handled == 1  # a fresh incarnation handled it...
    assert after.value == 4  # ...starting from the last snapshot
    assert (await _incarnation(mesh, name)) != old
    assert (await mesh.ask(name, Count(), expect=Counted)).value == 5
    stats = await mesh.stats(name)
    assert stats.snapshots == 2


async def test_the_snapshot_is_json_with_the_state_and_the_handled_ids(
    mesh: Mesh, counter: tuple[str, TeamHandle]
) -> None:
    name, _team = counter
    await mesh.ask(name, Count(), expect=Counted)
    path = mesh.config.state_dir / mesh.config.namespace / f"{name}.json"
    data = json.loads(path.read_text())
    assert data["state"] == {"value": 1}
    assert list(data["handled"]) == [mesh.name]
    assert len(data["handled"][mesh.name]) == 1
    assert not list(path.parent.glob(f".{name}.json.*.tmp"))  # no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # its user's alone


async def test_a_resend_to_the_restarted_agent_is_not_applied_twice(
    mesh: Mesh, counter: tuple[str, TeamHandle]
) -> None:
    name, _team = counter
    host = await mesh.actor(name)
    old = await host.ping.remote()
    env, frame = _frame(Kind.ASK, name, Count(), to=old, deadline=time.time() + 60)
    first = _codec.decode(await request(host, "resender#1", 0, frame))
    assert mesh._edge.open_reply(first, Counted) == Counted(value=1, incarnation_handled=1)
    ray.kill(host)
    await _restarted(mesh, name, old)
    successor = await mesh.actor(name)
    # The resend is the same message (the same id), bound to the successor, as a
    # sender's retry makes it.
    env.to_incarnation = await successor.ping.remote()
    again = _codec.decode(await request(successor, "resender#2", 0, _codec.encode(env)))
    with pytest.raises(DuplicateMessageError):
        mesh._edge.open_reply(again, Counted)
    assert (await mesh.ask(name, Count(), expect=Counted)).value == 2  # not 3
    assert (await mesh.stats(name)).duplicates == 1


#: The full-size form: minutes, on demand with `pytest -m long`.
FULL_FORM = [pytest.mark.slow, pytest.mark.long]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("asks", "kill_every_s"),
    [(1_000, 1.0), pytest.param(10_000, 0.5, marks=FULL_FORM)],
    ids=["ci", "full"],
)
async def test_at_least_once_asks_across_kills_apply_each_acknowledged_effect_exactly_once(
    mesh: Mesh, asks: int, kill_every_s: float
) -> None:
    figures = await exactly_once(mesh, asks=asks, kill_every_s=kill_every_s)
    assert figures.kills >= 1
    assert figures.hung == 0
    assert figures.untyped == 0
    assert figures.acknowledged + sum(figures.errors.values()) == asks
    assert figures.acknowledged > 0
    assert figures.retries > 0  # the kills were felt, and sent again
    assert figures.lost == 0
    assert figures.applied_twice == 0
    # Only the deadline ends an at-least-once ask to an agent that keeps coming back.
    assert set(figures.errors) <= {"DeadlineExceededError"}, figures.errors
