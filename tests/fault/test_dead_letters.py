"""Every message that is not delivered or not handled leaves a dead letter, typed and traced."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import ray
from _agents import Boom, Echo, Member, Note, Ping, Pong, Sleep
from _hostcalls import deliver, request
from _rel_agents import Hold, Holder
from conftest import Spawn
from typer.testing import CliRunner

from mesh import (
    DeadLetter,
    DeadlineExceededError,
    DecodeError,
    MailboxFullError,
    Mesh,
    MeshError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh.cli import app
from protocols import Codec, Envelope, ErrorReply, Kind
from protocols.calls import WHOLE_CALL, open_answers, open_result

pytestmark = pytest.mark.ray

_codec = Codec()


async def _letters(
    mesh: Mesh, agent: str, reason: str, *, count: int = 1, within: float = 10.0
) -> list[DeadLetter]:
    """Wait until `agent` has at least `count` dead letters with `reason`; return them."""
    deadline = time.monotonic() + within
    while True:
        found = [d for d in await mesh.dead_letters(agent, limit=1000) if d.reason == reason]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {reason!r} dead letters for {agent} not seen: {found}")
        await asyncio.sleep(0.05)


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


async def test_a_tell_to_no_such_peer_is_a_no_peer_dead_letter(mesh: Mesh) -> None:
    trace = "d1" * 16
    with pytest.raises(PeerNotFoundError):
        await mesh.tell("nobody-here", Ping(text="x"), trace_id=trace)
    (letter,) = await _letters(mesh, "nobody-here", "no_peer")
    assert letter.agent == mesh.name  # the edge saw it
    assert letter.type == "test.ping/1"
    assert letter.trace_id == trace
    assert letter.error_type == "PeerNotFoundError"


async def test_refusals_of_a_full_mailbox_are_dead_letters(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "dl-full", mailbox_size=1)
    await mesh.tell(echo.name, Sleep(seconds=2))
    outcomes = await asyncio.gather(
        *(mesh.tell(echo.name, Note(seq=i)) for i in range(6)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, MailboxFullError)]
    assert refused
    letters = await _letters(mesh, echo.name, "mailbox_full", count=len(refused))
    assert len(letters) == len(refused)
    assert {d.agent for d in letters} == {echo.name}  # recorded by the recipient
    assert {d.trace_id for d in letters} == {e.trace_id for e in refused}
    assert (await mesh.stats(echo.name)).dead_letters == len(refused)


async def test_a_frame_that_cannot_be_read_is_refused_and_dead_lettered(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-decode")
    host = await mesh.actor(echo.name)
    garbage = b"\xc1 not msgpack"
    refusals, _ = await deliver(host, "fuzzer#1", 0, [garbage])
    assert refusals is not None
    ((index, error),) = refusals
    assert index == 0
    assert isinstance(MeshError.from_wire(error), DecodeError)
    (letter,) = await _letters(mesh, echo.name, "decode")
    assert letter.frame_bytes == len(garbage)
    assert letter.type is None  # nothing of the header could be trusted


async def _answer_to_call(host: Any, method: str, call: Any) -> MeshError:
    """Call `method` of `host` with `call`; return the error its answer carries."""
    if method == "deliver":
        refusals, carried = open_result(await host.deliver.remote(call))
        assert carried == []
        ((index, error),) = refusals or []
        assert index == WHOLE_CALL
        return MeshError.from_wire(error)
    if method == "request":
        frame = await host.request.remote(call)
    elif method == "asks":
        items = [open_answers(await item) async for item in host.asks.remote(call)]
        ((index, frame),) = [answer for answers in items for answer in answers]
        assert index == WHOLE_CALL
    else:
        (frame,) = [frame async for batch in host.stream.remote(call) for frame in await batch]
    reply = _codec.decode(frame)
    assert reply.kind is Kind.ERROR
    return _codec.decode_message(reply, ErrorReply).to_error()


@pytest.mark.parametrize("method", ["deliver", "request", "stream", "asks"])
async def test_a_call_that_is_not_a_call_is_answered_typed_and_dead_lettered(
    mesh: Mesh, spawn: Spawn, method: str
) -> None:
    echo = await spawn(Echo, f"dl-call-{method}")
    host = await mesh.actor(echo.name)
    calls = [b"\xc1 not msgpack", msgpack.packb(["fuzzer#1", "zero", b"frame"]), "not bytes"]
    for call in calls:
        error = await _answer_to_call(host, method, call)
        assert isinstance(error, DecodeError)
        assert "call" in error.message
    letters = await _letters(mesh, echo.name, "decode", count=len(calls))
    assert [letter.type for letter in letters] == [None] * len(calls)
    assert [letter.frame_bytes for letter in letters] == [len(call) for call in calls]
    reply = await mesh.ask(echo.name, Ping(text="still here"), expect=Pong)  # the agent lives on
    assert reply.text == "still here"


async def test_a_tell_whose_payload_fails_its_schema_is_a_schema_dead_letter(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-schema")
    host = await mesh.actor(echo.name)
    bad = Envelope(kind=Kind.TELL, type="test.ping/1", sender="fuzzer", recipient=echo.name,
                   payload=msgpack.packb({"text": 5}), to_incarnation=echo.incarnation)  # fmt: skip
    assert await deliver(host, "fuzzer#1", 0, [_codec.encode(bad)]) == (None, [])  # queued
    (letter,) = await _letters(mesh, echo.name, "schema")
    assert letter.message_id == bad.id
    assert letter.trace_id == bad.trace_id
    assert letter.error_type == "DecodeError"
    assert "text" in letter.error


async def test_a_crash_in_a_tells_handler_is_a_handler_crash_dead_letter(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-crash")
    await mesh.tell(echo.name, Boom(text="kaput"))
    (letter,) = await _letters(mesh, echo.name, "handler_crash")
    assert letter.error_type == "HandlerError"
    assert "kaput" in letter.error
    assert letter.kind == "tell"


async def test_an_ask_whose_peer_dies_is_a_peer_dead_letter_and_a_typed_error(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-dead")
    host = await mesh.actor(echo.name)
    asking = asyncio.create_task(mesh.ask(echo.name, Sleep(seconds=10), timeout=20))
    await _eventually(lambda: _busy(mesh, echo.name))
    ray.kill(host)
    with pytest.raises(PeerDeadError):
        await asking
    (letter,) = await _letters(mesh, echo.name, "peer_dead")
    assert letter.kind == "ask"
    assert letter.type == "test.sleep/1"


async def _busy(mesh: Mesh, name: str) -> bool:
    return (await mesh.stats(name)).received >= 1


async def _blocked(mesh: Mesh, name: str) -> bool:
    # Asked on the control lane, which answers while the main loop is blocked.
    health = await (await mesh.actor(name)).health.remote()
    return bool(health["loop_lag_s"] > 0.2)


async def test_a_reply_after_the_asks_deadline_is_dropped_and_counted_as_late(
    mesh: Mesh, spawn: Spawn
) -> None:
    holder = await spawn(Holder, "dl-late")
    # The link first: on a loaded machine, looking the agent up and opening the link could
    # take the whole deadline, and an ask that never left gets no reply, late or not.
    await mesh.ask(holder.name, Hold(seconds=0), timeout=30)
    with pytest.raises(DeadlineExceededError):
        # The handler blocks the loop past the deadline, so its reply comes late.
        await mesh.ask(holder.name, Hold(seconds=2.0), timeout=0.5)
    (letter,) = await _letters(mesh, holder.name, "late")
    assert letter.agent == mesh.name  # the asker saw it
    assert letter.sender == holder.name
    assert letter.kind == "reply"
    assert letter.type == "test.rel.counted/1"


async def test_an_ask_that_expired_in_the_mailbox_is_not_handled(mesh: Mesh, spawn: Spawn) -> None:
    holder = await spawn(Holder, "dl-expired")
    blocking = asyncio.create_task(mesh.ask(holder.name, Hold(seconds=3.0), timeout=10))
    await _eventually(lambda: _blocked(mesh, holder.name))
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        await mesh.ask(holder.name, Hold(seconds=0), timeout=0.3)
    assert time.monotonic() - start < 2.2  # by its own deadline, not when the agent got to it
    assert (await blocking).value == 1
    (letter,) = await _letters(mesh, holder.name, "expired")
    assert letter.type == "test.rel.hold/1"
    stats = await mesh.stats(holder.name)
    # Dropped at the front of the mailbox as expired, or on its asker's cancel
    # (which arrives once the loop is free again): either way, never handled.
    assert stats.expired + stats.cancelled == 1
    assert stats.handled == 1  # only the blocking one ran
    # The agent goes on serving.
    assert (await mesh.ask(holder.name, Hold(seconds=0), timeout=5)).value == 2


async def test_an_ask_that_arrives_already_expired_gets_a_typed_error_unhandled(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-stale")
    host = await mesh.actor(echo.name)
    stale = Envelope(kind=Kind.ASK, type="test.ping/1", sender="fuzzer", recipient=echo.name,
                     payload=_codec.encode_message(Ping(text="old")),
                     deadline=time.time() - 1, to_incarnation=echo.incarnation)  # fmt: skip
    reply = _codec.decode(await request(host, "fuzzer#1", 0, _codec.encode(stale)))
    assert reply.kind is Kind.ERROR
    assert reply.correlation_id == stale.id
    (letter,) = await _letters(mesh, echo.name, "expired")
    assert letter.message_id == stale.id
    assert (await mesh.stats(echo.name)).handled == 0
    assert await mesh.ask(echo.name, Ping(text="fresh"), expect=Pong) == Pong(text="fresh")


async def test_dead_letters_hold_headers_not_payloads_and_respect_the_limit(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-limit")
    for _ in range(5):
        await mesh.tell(echo.name, Boom(text="secret-payload-text"))
    letters = await _letters(mesh, echo.name, "handler_crash", count=5)
    assert len(await mesh.dead_letters(echo.name, limit=2)) == 2
    assert all("payload" not in d.model_dump() for d in letters)
    assert len({d.message_id for d in letters}) == 5


async def test_the_cli_shows_an_agents_dead_letters_as_a_table_and_as_json(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "dl-cli")
    await mesh.tell(echo.name, Boom(text="for the cli"))
    (letter,) = await _letters(mesh, echo.name, "handler_crash")
    gcs = ray.get_runtime_context().gcs_address
    runner = CliRunner()
    args = ["deadletters", "--address", gcs, "--agent", echo.name]
    # In a thread: the command runs an event loop of its own.
    as_json = await asyncio.to_thread(runner.invoke, app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.stdout)
    assert DeadLetter.model_validate(row) == letter
    table = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "handler_crash" in table.stdout
    assert letter.trace_id is not None
    assert letter.trace_id[:8] in table.stdout


async def test_tells_left_in_the_mailbox_of_a_crashed_agent_are_dead_letters(
    mesh: Mesh, spawn: Spawn
) -> None:
    member = await spawn(Member, "dl-stopped")  # crash_on_error: a crash stops it
    host = await mesh.actor(member.name)
    await mesh.tell(member.name, Sleep(seconds=0.5))
    await mesh.tell(member.name, Boom(text="down"))
    for _ in range(3):
        await mesh.tell(member.name, Ping(text="queued"))
    ended = await host.watch.remote()
    assert not ended["normal"]
    # It has left the registry; its host still answers until it is reaped.
    letters = [DeadLetter.model_validate(row) for row in await host.dead_letters.remote()]
    assert [d.reason for d in letters] == ["handler_crash", "stopped", "stopped", "stopped"]
    assert {d.type for d in letters[1:]} == {"test.ping/1"}
