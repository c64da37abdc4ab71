"""Large payloads are decoded on the host's decoding thread; small ones where they are."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msgpack

from mesh.datapath._offloop import is_large, off_loop
from protocols import Codec, Envelope, Kind, Message


class Numbers(Message, type="test.offloop.numbers/1"):
    data: list[Any]


def _env(count: int) -> Envelope:
    payload = msgpack.packb({"data": list(range(count))})
    return Envelope(kind=Kind.TELL, type=Numbers.type_tag or "", sender="a", recipient="b",
                    payload=payload)  # fmt: skip


async def test_a_large_payload_is_decoded_on_the_decoding_thread() -> None:
    threads: list[str] = []

    def where() -> str:
        threads.append(threading.current_thread().name)
        return "done"

    small, large = _env(10), _env(50_000)
    assert not is_large(small, len(small.payload))
    assert is_large(large, len(small.payload))
    assert await off_loop(where) == "done"
    assert threads[0].startswith("raymesh-decode")
    assert threads[0] != threading.current_thread().name
    message = await off_loop(lambda: Codec().decode_message(large, Numbers))
    assert message.data == list(range(50_000))


async def test_the_loop_runs_while_a_large_payload_decodes() -> None:
    # 400,000 ints in lists of 10 (limits raised for them): 40,000 list hooks and
    # pydantic validating them all, well over the interpreter's switch interval (5 ms),
    # at which the decoding thread yields the GIL; the loop's 1 ms ticker must run then.
    env = Envelope(kind=Kind.TELL, type=Numbers.type_tag or "", sender="a", recipient="b",
                   payload=msgpack.packb({"data": [list(range(10))] * 40_000}))  # fmt: skip
    codec = Codec(max_objects=10**6)
    ticks = 0
    seen: list[int] = []
    stop = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.001)
            ticks += 1

    def decode() -> Numbers:
        # Read from the decoding thread: the ticks between its start and its end.
        seen.append(ticks)
        try:
            return codec.decode_message(env, Numbers)
        finally:
            seen.append(ticks)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    message = await off_loop(decode)
    stop.set()
    await ticker
    assert len(message.data) == 40_000
    assert seen[1] > seen[0]  # inline, the loop could not have ticked in between
