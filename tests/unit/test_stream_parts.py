"""The parts of a stream without Ray: the bounded sink, `Stream`, and chunk frames on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mesh.datapath._sink import StreamSink
from protocols import (
    Chunk,
    Codec,
    DecodeLimitError,
    Envelope,
    Kind,
    Message,
    SignatureError,
    Signer,
    Stream,
    StreamEnd,
)


class Done(Message, type="test.unit.stream_done/1"):
    text: str


def _chunk(seq: int, text: str = "x") -> Chunk:
    return Chunk(text=text, agent="a", span_id="0" * 15 + "1", seq=seq)


def _sink(buffer: int) -> StreamSink:
    sink = StreamSink(buffer=buffer, encode=lambda env, chunk: chunk.text.encode())
    sink.env = Envelope(kind=Kind.ASK, type="t/1", sender="s", recipient="r", payload=b"")
    return sink


async def test_emit_waits_while_the_sink_is_full_and_batches_keep_the_order() -> None:
    sink = _sink(buffer=3)
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for i in range(10):
            await sink.put(_chunk(i, str(i)))
            produced += 1
        sink.done.set_result(b"reply")

    producing = asyncio.create_task(produce())
    await asyncio.sleep(0.01)
    assert produced == 3  # the bound: the fourth emit waits for the reader
    got = [frame async for batch in sink.batches() for frame in batch]
    await producing
    assert got == [str(i).encode() for i in range(10)] + [b"reply"]
    assert sink.emitted == 10


async def test_a_chunk_emitted_after_the_ask_ended_is_dropped() -> None:
    sink = _sink(buffer=2)
    sink.done.set_result(b"reply")
    await sink.put(_chunk(0))
    assert [batch async for batch in sink.batches()] == [[b"reply"]]
    assert sink.emitted == 0


async def test_a_stream_yields_chunks_then_holds_the_reply_and_forwards_each_chunk() -> None:
    forwarded: list[Chunk] = []

    async def source() -> AsyncIterator[Chunk | StreamEnd]:
        yield _chunk(0)
        yield _chunk(1)
        yield StreamEnd(Done(text="ok"))

    async def forward(chunk: Chunk) -> None:
        forwarded.append(chunk)

    stream = Stream(source(), trace_id="f" * 32, forward=forward)
    assert stream.reply is None
    assert await stream.result() == Done(text="ok")
    assert [c.seq for c in forwarded] == [0, 1]
    assert [c async for c in stream] == []  # ended: nothing more


async def test_leaving_a_stream_early_closes_its_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[Chunk | StreamEnd]:
        try:
            for i in range(100):
                yield _chunk(i)
        finally:
            closed.set()

    async with Stream(source(), trace_id="f" * 32) as stream:
        async for chunk in stream:
            if chunk.seq == 2:
                break
    assert closed.is_set()


def test_a_chunk_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        _chunk(0).text = "changed"  # type: ignore[misc]


def _frame(codec: Codec, chunk: Chunk) -> bytes:
    env = Envelope(kind=Kind.CHUNK, type=Chunk.type_tag or "", sender="a", recipient="edge",
                   payload=codec.encode_message(chunk), correlation_id="c" * 32,
                   to_incarnation="i", from_incarnation="j")  # fmt: skip
    return codec.encode(env)


def test_chunk_frames_are_signed_and_bounded_like_every_frame() -> None:
    signed = Codec(signer=Signer(b"k" * 32))
    frame = _frame(signed, _chunk(4, "hello"))
    env = signed.decode(frame)
    assert env.kind is Kind.CHUNK
    assert signed.decode_message(env, Chunk) == _chunk(4, "hello")
    with pytest.raises(SignatureError):
        Codec(signer=Signer(b"x" * 32)).decode(frame)
    small = Codec(max_str_len=16)
    with pytest.raises(DecodeLimitError):
        small.decode_message(small.decode(_frame(Codec(), _chunk(0, "y" * 100))), Chunk)
