"""Streamed asks on real Ray actors: chunks, replies, nesting and every guarantee."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray
from _stream_agents import Flood, HowFar, Producer, Progress, Quiet, Said, Say, Talker, Writer
from conftest import Spawn

from mesh import Chunk, DeadlineExceededError, Mesh, PeerDeadError, Stream
from mesh.datapath._sink import RAY_BATCHES

pytestmark = pytest.mark.ray


async def test_a_handler_emits_chunks_in_order_then_the_typed_reply(
    mesh: Mesh, spawn: Spawn
) -> None:
    talker = await spawn(Talker, "talker")
    stream = mesh.stream(talker.name, Say(count=5))
    assert isinstance(stream, Stream)
    assert len(stream.trace_id) == 32
    async with stream as s:
        chunks = [chunk async for chunk in s]
    assert [c.text for c in chunks] == [f"w{i} " for i in range(5)]
    assert [c.seq for c in chunks] == list(range(5))
    assert {c.agent for c in chunks} == {talker.name}
    assert chunks[0].data == {"i": 0}
    assert s.reply == Said(text="w0 w1 w2 w3 w4", agent=talker.name)


async def test_a_generator_handler_streams_what_it_yields_and_its_message_is_the_reply(
    mesh: Mesh, spawn: Spawn
) -> None:
    writer = await spawn(Writer, "writer")
    async with mesh.stream(writer.name, Say(count=2)) as s:
        chunks = [chunk async for chunk in s]
    assert [(c.text, c.data) for c in chunks] == [("g0 ", None), ("g1 ", None), ("", {"done": 2})]
    assert [c.seq for c in chunks] == [0, 1, 2]
    assert s.reply == Said(text="written", agent=writer.name)


async def test_a_handler_that_never_emits_streams_no_chunks_and_its_reply(
    mesh: Mesh, spawn: Spawn
) -> None:
    quiet = await spawn(Quiet, "quiet")
    reply = await mesh.stream(quiet.name, Say()).result()
    assert reply == Said(text="quiet True", agent=quiet.name)
    # Asked without a stream, the same handler's emit is a no-op.
    assert await mesh.ask(quiet.name, Say(), expect=Said) == Said(
        text="quiet False", agent=quiet.name
    )


async def test_forwarded_chunks_flow_up_three_hops_labelled_with_their_agent_and_span(
    mesh: Mesh, spawn: Spawn
) -> None:
    a, b, c = [await spawn(Talker, n) for n in ("fa", "fb", "fc")]
    async with mesh.stream(a.name, Say(count=2, via=[b.name, c.name])) as s:
        chunks: list[Chunk] = [chunk async for chunk in s]
    assert [(ch.agent, ch.text) for ch in chunks] == [
        (a.name, "<"), (b.name, "<"), (c.name, "w0 "), (c.name, "w1 "), (b.name, ">"),
        (a.name, ">"),
    ]  # fmt: skip
    assert [ch.seq for ch in chunks if ch.agent == a.name] == [0, 1]
    assert [ch.seq for ch in chunks if ch.agent == c.name] == [0, 1]
    spans = {ch.agent: ch.span_id for ch in chunks}
    assert len(set(spans.values())) == 3
    assert s.reply == Said(text="[[w0 w1]]", agent=a.name)
    trace = await _spans(mesh, s.trace_id, 3)
    by_agent = {span["attributes"]["raymesh.agent"]: span for span in trace}
    for agent, span_id in spans.items():  # each label is the span that emitted it
        assert by_agent[agent]["span_id"] == span_id


async def test_each_stream_has_a_span_with_its_time_to_first_token(
    mesh: Mesh, spawn: Spawn
) -> None:
    talker = await spawn(Talker, "ttft")
    stream = mesh.stream(talker.name, Say(count=3, pause_s=0.05))
    await stream.result()
    [span] = await _spans(mesh, stream.trace_id, 1)
    assert span["attributes"]["raymesh.stream.chunks"] == 3
    assert 0.04 <= span["attributes"]["raymesh.stream.ttft_s"] < 1.0


async def test_the_deadline_ends_a_stream_with_the_typed_error(mesh: Mesh, spawn: Spawn) -> None:
    talker = await spawn(Talker, "late")
    got: list[str] = []
    started = time.monotonic()

    async def read() -> None:
        async with mesh.stream(talker.name, Say(count=100, pause_s=0.1), timeout=0.5) as s:
            async for chunk in s:
                got.append(chunk.text)

    with pytest.raises(DeadlineExceededError):
        await read()
    assert 2 <= len(got) <= 6  # chunks came until the deadline, not after
    assert time.monotonic() - started < 5.0  # the whole stream would take 10 s


async def test_a_reader_that_stops_cancels_the_handler(mesh: Mesh, spawn: Spawn) -> None:
    producer = await spawn(Producer, "stopped")
    async with mesh.stream(producer.name, Flood(count=100_000)) as s:
        async for chunk in s:
            if chunk.seq == 3:
                break
    progress = await _settled(mesh, producer.name)
    assert progress.cancelled
    assert not progress.running
    assert progress.produced < 1000


async def test_a_slow_reader_slows_the_producer_within_the_buffer(mesh: Mesh, spawn: Spawn) -> None:
    producer = await spawn(Producer, "slow")
    buffer = mesh.config.stream_buffer_chunks
    async with mesh.stream(producer.name, Flood(count=10 * buffer)) as s:
        first = await anext(s)
        await asyncio.sleep(1.0)  # the producer runs into the bound meanwhile
        held = await mesh.ask(producer.name, HowFar(), expect=Progress)
        rest = [chunk async for chunk in s]
    # The handler's sink, Ray's two batches, and the batch the reader is in.
    assert buffer < held.produced <= (2 + RAY_BATCHES) * buffer, held
    assert held.running
    assert [c.seq for c in [first, *rest]] == list(range(10 * buffer))  # order kept
    assert s.reply == Said(text=str(10 * buffer), agent=producer.name)


async def test_a_peer_that_dies_mid_stream_ends_it_with_the_typed_error(
    mesh: Mesh, spawn: Spawn
) -> None:
    talker = await spawn(Talker, "dying")
    got: list[str] = []

    async def read() -> None:
        async with mesh.stream(talker.name, Say(count=100, pause_s=0.05), timeout=20) as s:
            async for chunk in s:
                got.append(chunk.text)
                if len(got) == 2:
                    ray.kill(await mesh.actor(talker.name))

    with pytest.raises(PeerDeadError):
        await read()
    assert 2 <= len(got) < 100


async def _settled(mesh: Mesh, name: str) -> Progress:
    deadline = time.monotonic() + 10
    while (progress := await mesh.ask(name, HowFar(), expect=Progress)).running:
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.05)
    return progress


async def _spans(mesh: Mesh, trace_id: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    while len(spans := await mesh.trace(trace_id)) < count:
        assert time.monotonic() < deadline, spans
        await asyncio.sleep(0.1)
    return spans
