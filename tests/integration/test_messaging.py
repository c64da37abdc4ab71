"""Asks, tells, ordering, tracing and errors between real agents on a real local Ray."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray
from _agents import (
    Blob,
    Boom,
    Echo,
    FailingStart,
    FindPeers,
    Gather,
    Gatherer,
    GetNotes,
    Note,
    Notes,
    PeerNames,
    Ping,
    PingMany,
    Pong,
    Pongs,
    Recurse,
    Recursive,
    Relay,
    Relayer,
    Seen,
    SendNotes,
    Sleep,
    Unhandled,
)
from conftest import Spawn

from mesh import (
    ConfigError,
    DeadlineExceededError,
    DecodeError,
    EncodeError,
    HandlerError,
    MailboxFullError,
    Mesh,
    NameTakenError,
    NoHandlerError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh._compat import system_config_problem

pytestmark = pytest.mark.ray


async def test_ask_returns_the_handlers_reply(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo", prefix="re:")
    reply = await mesh.ask(echo.name, Ping(text="hello"), expect=Pong)
    assert reply == Pong(text="re:hello")


async def test_tell_is_handled_after_it_is_accepted(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    await mesh.tell(echo.name, Note(seq=7))
    notes = await mesh.ask(echo.name, GetNotes(), expect=Notes)
    assert notes.seqs == [7]
    assert notes.senders == [mesh.name]


async def test_thousand_tells_from_the_edge_are_handled_in_order(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    await asyncio.gather(*(mesh.tell(echo.name, Note(seq=i)) for i in range(1000)))
    notes = await mesh.ask(echo.name, GetNotes(), expect=Notes)
    assert notes.seqs == list(range(1000))


async def test_thousand_concurrent_tells_between_agents_keep_their_order(
    mesh: Mesh, spawn: Spawn
) -> None:
    sender = await spawn(Echo, "sender")
    receiver = await spawn(Echo, "receiver")
    await mesh.ask(sender.name, SendNotes(peer=receiver.name, count=1000))
    notes = await mesh.ask(receiver.name, GetNotes(), expect=Notes)
    assert notes.seqs == list(range(1000))
    assert notes.senders == [sender.name]
    stats = await mesh.stats(receiver.name)
    assert stats.gaps == 0


def test_the_local_ray_runs_with_raymeshs_system_config(mesh: Mesh) -> None:
    # Batch calls inline, not through the object store (`mesh._compat.RAY_SYSTEM_CONFIG`).
    assert system_config_problem() is None
    assert system_config_problem({"max_direct_call_object_size": 1}) is not None  # it reads


async def test_the_edges_asks_of_one_turn_share_a_call_and_a_slow_one_holds_back_none(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "asked-together", prefix="re:", concurrency=8)
    await mesh.ask(echo.name, Sleep(seconds=0.0))  # the link and the types, made alone
    before = (await mesh.stats(echo.name)).asks_together
    slow = asyncio.ensure_future(mesh.ask(echo.name, Sleep(seconds=2.0), timeout=30))
    fast = [mesh.ask(echo.name, Ping(text=str(i)), expect=Pong, timeout=30) for i in range(5)]
    replies = await asyncio.gather(*fast)
    assert [reply.text for reply in replies] == [f"re:{i}" for i in range(5)]
    assert not slow.done()  # its reply comes on the same call, when it is ready
    assert (await mesh.stats(echo.name)).asks_together - before == 6
    slept = await slow
    assert isinstance(slept, Pong)
    assert slept.text == "slept"


async def test_replies_ready_at_once_go_back_in_the_call_that_brought_their_asks(
    mesh: Mesh, spawn: Spawn
) -> None:
    asker = await spawn(Echo, "asker")
    echo = await spawn(Echo, "echo", prefix="re:")
    got = await mesh.ask(asker.name, PingMany(peer=echo.name, count=20), expect=Pongs)
    assert got.texts == [f"re:{i}" for i in range(20)]
    # The twenty came in one batch call; nothing had gone back the other way, so each
    # reply went back in that call's result, none on a call of its own.
    assert (await mesh.stats(echo.name)).replies_carried == 20
    assert (await mesh.stats(asker.name)).late_replies == 0


async def test_trace_id_and_spans_follow_a_chain_of_three_agents(mesh: Mesh, spawn: Spawn) -> None:
    a, b, c = [await spawn(Relayer, n) for n in ("a", "b", "c")]
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    seen = await mesh.ask(a.name, Relay(route=[b.name, c.name]), trace_id=trace_id, expect=Seen)
    first, second, third = seen.hops
    assert [h["agent"] for h in seen.hops] == [a.name, b.name, c.name]
    assert {h["trace_id"] for h in seen.hops} == {trace_id}
    assert first["parent_span_id"] is None
    assert second["parent_span_id"] == first["span_id"]
    assert third["parent_span_id"] == second["span_id"]
    assert len({h["span_id"] for h in seen.hops}) == 3
    assert [h["hops"] for h in seen.hops] == [0, 1, 2]
    assert third["chain"] == f"{a.name},{b.name}"
    assert len({h["pid"] for h in seen.hops}) == 3  # three actors, three processes


async def test_edge_mints_a_new_w3c_trace_id_for_each_conversation(
    mesh: Mesh, spawn: Spawn
) -> None:
    a = await spawn(Relayer, "a")
    traces = [
        (await mesh.ask(a.name, Relay(route=[]), expect=Seen)).hops[0]["trace_id"] for _ in range(2)
    ]
    assert traces[0] != traces[1]
    for trace in traces:
        assert isinstance(trace, str)
        assert len(trace) == 32
        assert int(trace, 16) != 0


async def test_ask_to_an_unknown_agent_raises_peer_not_found(mesh: Mesh) -> None:
    with pytest.raises(PeerNotFoundError, match="no agent named 'nobody'") as caught:
        await mesh.ask("nobody", Ping())
    assert caught.value.agent == "nobody"
    assert isinstance(caught.value, LookupError)


async def test_unknown_peer_inside_a_handler_reaches_the_asker_as_handler_error(
    mesh: Mesh, spawn: Spawn
) -> None:
    a = await spawn(Relayer, "a")
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(a.name, Relay(route=["nobody"]))
    assert caught.value.remote_type == "PeerNotFoundError"
    assert caught.value.agent == a.name


async def test_handler_exception_reaches_the_asker_and_the_agent_keeps_serving(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(echo.name, Boom(text="kaput"), trace_id="ab" * 16)
    error = caught.value
    assert error.remote_type == "ValueError"
    assert "boom: kaput" in str(error)
    assert 'raise ValueError(f"boom: {msg.text}")' in error.remote_traceback
    assert error.agent == echo.name
    assert error.trace_id == "ab" * 16
    assert await mesh.ask(echo.name, Ping(text="still here"), expect=Pong)


async def test_message_without_handler_raises_no_handler_error(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(NoHandlerError, match=r"test\.unhandled/1") as caught:
        await mesh.ask(echo.name, Unhandled())
    assert "test.ping/1" in (caught.value.hint or "")


async def test_full_mailbox_refuses_tells_with_mailbox_full_error(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo", mailbox_size=2)
    await mesh.tell(echo.name, Sleep(seconds=3))  # occupies the only worker
    results = await asyncio.gather(
        *(mesh.tell(echo.name, Note(seq=i)) for i in range(10)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    accepted = [r for r in results if r is None]
    assert 2 <= len(accepted) <= 3  # 3 if the sleeper had not left the mailbox yet
    assert len(refused) == 10 - len(accepted)
    for error in refused:
        assert isinstance(error, MailboxFullError)
        assert error.agent == echo.name
    stats = await mesh.stats(echo.name)
    assert stats.refused == len(refused)


async def test_full_mailbox_refuses_asks_at_once(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo", mailbox_size=1)
    await mesh.tell(echo.name, Sleep(seconds=3))
    await mesh.tell(echo.name, Note(seq=1))
    start = time.monotonic()
    with pytest.raises(MailboxFullError):
        await mesh.ask(echo.name, Ping(), timeout=10)
    assert time.monotonic() - start < 3  # refused, not timed out


async def test_a_live_agents_name_is_refused_with_name_taken_error(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(NameTakenError, match="is taken by a live agent") as caught:
        await mesh.spawn(Echo, name=echo.name)
    assert caught.value.agent == echo.name
    assert await mesh.ask(echo.name, Ping(text="x"), expect=Pong) == Pong(text="x")


async def test_a_killed_agents_name_can_be_used_again(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    ray.kill(await mesh.actor(echo.name))
    again = await mesh.spawn(Echo, name=echo.name, prefix="new:")
    try:
        assert again.incarnation != echo.incarnation
        assert await mesh.ask(echo.name, Ping(text="x"), expect=Pong) == Pong(text="new:x")
    finally:
        await mesh.stop(echo.name)


async def test_registry_finds_agents_by_role_and_capability(mesh: Mesh, spawn: Spawn) -> None:
    coder = await spawn(Echo, "coder", role="coder", capabilities=["python", "rust"])
    critic = await spawn(Echo, "critic", role="critic", capabilities=["python"])
    asker = await spawn(Echo, "asker", role="asker")
    mine = {coder.name, critic.name, asker.name}

    by_role = {a.name for a in await mesh.agents(role="coder")} & mine
    assert by_role == {coder.name}
    python = {a.name for a in await mesh.agents(capability="python")} & mine
    assert python == {coder.name, critic.name}
    both = await mesh.agents(role="critic", capability="python")
    assert {a.name for a in both} & mine == {critic.name}

    from_inside = await mesh.ask(asker.name, FindPeers(capability="rust"), expect=PeerNames)
    assert set(from_inside.names) & mine == {coder.name}
    info = next(a for a in await mesh.agents() if a.name == coder.name)
    assert info.capabilities == ("python", "rust")
    assert info.incarnation == coder.incarnation
    assert info.node_id


async def test_ask_past_its_deadline_raises_deadline_exceeded(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        await mesh.ask(echo.name, Sleep(seconds=10), timeout=0.5, trace_id="cd" * 16)
    assert time.monotonic() - start < 5
    assert caught.value.agent == echo.name
    assert caught.value.trace_id == "cd" * 16
    assert isinstance(caught.value, TimeoutError)


async def test_handler_is_cancelled_at_its_deadline_and_the_agent_serves_the_next(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(DeadlineExceededError):
        await mesh.ask(echo.name, Sleep(seconds=30), timeout=0.3)
    # The serial agent would be stuck for 30 s if the handler had not been cancelled.
    assert await mesh.ask(echo.name, Ping(text="next"), timeout=10, expect=Pong)


async def test_ask_to_an_agent_killed_mid_ask_raises_peer_dead_at_once(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    asking = asyncio.create_task(mesh.ask(echo.name, Sleep(seconds=30), timeout=30))
    await asyncio.sleep(0.3)  # let the ask reach the handler
    start = time.monotonic()
    ray.kill(await mesh.actor(echo.name))
    with pytest.raises(PeerDeadError) as caught:
        await asking
    assert time.monotonic() - start < 10
    assert caught.value.agent == echo.name


async def test_agent_to_agent_ask_to_a_killed_peer_raises_peer_dead(
    mesh: Mesh, spawn: Spawn
) -> None:
    front = await spawn(Relayer, "front")
    back = await spawn(Relayer, "back")
    assert await mesh.ask(front.name, Relay(route=[back.name]), expect=Seen)
    ray.kill(await mesh.actor(back.name))
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(front.name, Relay(route=[back.name]), timeout=10)
    # Dead as the relay learnt (never sent), or found dead on the way, or already gone.
    assert caught.value.remote_type in {
        "DiedBeforeRunError",
        "OutcomeUnknownError",
        "PeerNotFoundError",
    }


async def test_recursion_stops_at_the_hop_limit(mesh: Mesh, spawn: Spawn) -> None:
    loop = await spawn(Recursive, "loop")
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(loop.name, Recurse(), timeout=20)
    assert caught.value.remote_type == "HopLimitError"
    assert "17 hops" in str(caught.value)


async def test_concurrent_agent_handles_messages_in_parallel(mesh: Mesh, spawn: Spawn) -> None:
    gatherer = await spawn(Gatherer, "gatherer", concurrency=4)
    replies = await asyncio.gather(*(mesh.ask(gatherer.name, Gather(count=4)) for _ in range(4)))
    assert all(isinstance(r, Pong) for r in replies)


async def test_serial_agent_handles_one_message_at_a_time(mesh: Mesh, spawn: Spawn) -> None:
    gatherer = await spawn(Gatherer, "gatherer")
    results = await asyncio.gather(
        *(mesh.ask(gatherer.name, Gather(count=2), timeout=15) for _ in range(2)),
        return_exceptions=True,
    )
    # The first handler waits for a second that cannot start while it runs.
    assert isinstance(results[0], HandlerError)
    assert results[0].remote_type == "TimeoutError"


async def test_oversized_message_fails_in_the_sender(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(EncodeError, match="exceeds the limit"):
        await mesh.ask(echo.name, Blob(data=b"x" * (mesh.config.max_payload_bytes + 1)))
    big = Blob(data=b"y" * (mesh.config.max_payload_bytes // 2))
    with pytest.raises(EncodeError, match="exceeds the limit") as caught:
        await mesh.ask(echo.name, big)  # the doubled reply is too large to send back
    assert caught.value.agent == echo.name
    assert await mesh.ask(echo.name, Blob(data=b"ok"), expect=Blob) == Blob(data=b"okok")


async def test_reply_of_another_type_than_expected_raises_decode_error(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    with pytest.raises(DecodeError, match=r"test\.notes/1"):
        await mesh.ask(echo.name, Ping(), expect=Notes)


async def test_ask_of_a_handler_returning_none_returns_none(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "echo")
    assert await mesh.ask(echo.name, Note(seq=1)) is None


async def test_agent_whose_on_start_fails_is_not_spawned(mesh: Mesh) -> None:
    with pytest.raises(ConfigError, match="no database"):
        await mesh.spawn(FailingStart, name="failing")
    assert "failing" not in {a.name for a in await mesh.agents()}


async def test_spawn_rejects_bad_names_and_classes(mesh: Mesh) -> None:
    with pytest.raises(ConfigError, match="not valid"):
        await mesh.spawn(Echo, name="has space")
    with pytest.raises(ConfigError, match="not an Agent subclass"):
        await mesh.spawn(Ping, name="ping")  # type: ignore[arg-type]
