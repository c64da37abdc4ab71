"""InMemoryMessenger: the test double every pattern test stands on."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from pattern_helpers import answering, stalling

import mesh
import protocols
from protocols.envelope import Kind
from protocols.errors import DeadlineExceededError, DecodeError, DeliveryError, MeshError
from protocols.message import Message
from protocols.messenger import (
    Handler,
    InMemoryMessenger,
    Messenger,
    PeerInfo,
    UnknownPeerError,
)
from protocols.patterns import Reply, Request, Verdict


async def test_ask_returns_the_handlers_reply_and_logs_both_messages() -> None:
    net = InMemoryMessenger()
    net.register("echo", answering(lambda r: r.text.upper()))
    reply = await net.ask("echo", Request(text="hi"), expect=Reply)
    assert reply.text == "HI"
    assert [(d.kind, d.sender, d.recipient) for d in net.log] == [
        (Kind.ASK, "edge", "echo"),
        (Kind.REPLY, "echo", "edge"),
    ]
    assert net.count(trace_id=net.trace_id) == 2


async def test_ask_to_an_unknown_peer_raises_a_lookup_error() -> None:
    net = InMemoryMessenger()
    with pytest.raises(UnknownPeerError) as info:
        await net.ask("nobody", Request(text="hi"))
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, MeshError)


async def test_ask_that_outlives_its_timeout_cancels_the_handler_and_raises_timeout() -> None:
    net = InMemoryMessenger()
    cancelled: list[str] = []
    net.register("slow", stalling(seen=cancelled))
    with pytest.raises(TimeoutError) as info:
        await net.ask("slow", Request(text="hi"), timeout=0.01)
    assert isinstance(info.value, DeadlineExceededError)
    assert cancelled == ["slow"]


async def test_a_timed_out_ask_raises_the_class_the_mesh_raises() -> None:
    net = InMemoryMessenger()
    net.register("slow", stalling())
    with pytest.raises(mesh.DeadlineExceededError) as info:
        await net.ask("slow", Request(text="hi"), timeout=0.01)
    assert type(info.value) is mesh.errors.DeadlineExceededError is protocols.DeadlineExceededError
    assert isinstance(info.value, DeliveryError)
    assert info.value.agent == "slow"


@pytest.mark.parametrize("module", ["protocols", "protocols.messenger"])
def test_the_old_timeout_name_is_a_deprecated_alias(module: str) -> None:
    with pytest.warns(DeprecationWarning, match="DeadlineExceededError"):
        old = importlib.import_module(module).AskTimeoutError
    assert old is DeadlineExceededError


async def test_ask_with_a_wrong_reply_type_raises_decode_error() -> None:
    net = InMemoryMessenger()
    net.register("echo", answering(lambda r: r.text))
    with pytest.raises(DecodeError):
        await net.ask("echo", Request(text="hi"), expect=Verdict)


async def test_handlers_get_a_messenger_with_the_same_trace_and_a_tighter_deadline() -> None:
    net = InMemoryMessenger()
    seen: list[tuple[str, str, float | None]] = []

    async def outer(msg: Message, m: InMemoryMessenger) -> Message | None:
        seen.append((m.agent, m.trace_id, m.remaining()))
        return await m.ask("inner", msg)

    async def inner(msg: Message, m: InMemoryMessenger) -> Message | None:
        seen.append((m.agent, m.trace_id, m.remaining()))
        return Reply(text="deep")

    net.register("outer", outer)
    net.register("inner", inner)
    reply = await net.ask("outer", Request(text="x"), timeout=5.0)
    assert isinstance(reply, Reply)
    assert [(a, t) for a, t, _ in seen] == [("outer", net.trace_id), ("inner", net.trace_id)]
    assert all(left is not None and 0 < left <= 5.0 for _, _, left in seen)
    assert net.count(sender="outer", recipient="inner", kind=Kind.ASK) == 1


async def test_publish_reaches_every_subscriber_but_the_publisher() -> None:
    net = InMemoryMessenger()
    got: list[str] = []

    def listener(name: str) -> Handler:
        async def handle(msg: Message, m: InMemoryMessenger) -> Message | None:
            got.append(name)
            return None

        return handle

    for name in ("a", "b"):
        net.register(name, listener(name), topics=["news"])
    await net.with_deadline(None).publish("news", Request(text="hello"))
    await net.drain()
    assert sorted(got) == ["a", "b"]
    assert {d.topic for d in net.log} == {"news"}


async def test_a_failing_tell_is_recorded_not_raised() -> None:
    net = InMemoryMessenger()

    async def bad(msg: Message, m: InMemoryMessenger) -> Message | None:
        raise RuntimeError("nope")

    net.register("bad", bad)
    await net.tell("bad", Request(text="x"))
    await net.drain()
    assert [(name, str(exc)) for name, exc in net.tell_errors] == [("bad", "nope")]


async def test_peers_filters_by_role_and_capability_and_excludes_the_speaker() -> None:
    net = InMemoryMessenger(agent="a")
    started = asyncio.Event()
    net.register("a", stalling(started), role="coder")
    net.register("b", stalling(started), role="coder", capabilities=["python"])
    net.register("c", stalling(started), role="critic", capabilities=["python"])
    assert [p.name for p in await net.peers(role="coder")] == ["b"]
    assert [p.name for p in await net.peers(capability="python")] == ["b", "c"]
    assert all(isinstance(p, PeerInfo) for p in await net.peers())


def test_in_memory_messenger_is_a_messenger() -> None:
    messenger: Messenger = InMemoryMessenger()
    assert messenger.remaining() is None


async def test_a_nested_ask_timing_out_reaches_the_asker_naming_the_inner_agent() -> None:
    net = InMemoryMessenger()

    async def outer(msg: Message, m: InMemoryMessenger) -> Message | None:
        return await m.ask("inner", msg, timeout=0.01)

    net.register("outer", outer)
    net.register("inner", stalling())
    with pytest.raises(DeadlineExceededError) as info:
        await net.ask("outer", Request(text="x"), timeout=5.0)
    assert info.value.agent == "inner"


async def test_cancelling_an_ask_cancels_the_handler() -> None:
    net = InMemoryMessenger()
    started = asyncio.Event()
    cancelled: list[str] = []
    net.register("slow", stalling(started, cancelled))
    ask = asyncio.create_task(net.ask("slow", Request(text="x")))
    await started.wait()
    ask.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ask
    assert cancelled == ["slow"]
