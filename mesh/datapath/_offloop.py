"""Large payloads are decoded off the event loop, so a host keeps answering meanwhile.

Unpacking and validating a payload is pure CPU: a megabyte of it holds the event loop
for milliseconds to seconds, and every other ask to the agent (and its replies, and
its heartbeat) waits. Payloads above ``offloop_decode_bytes`` are decoded on one
thread of the process's own instead; the loop runs between the decoder's GIL
switches. One thread, not a pool: large decodes take turns, so however many arrive
at once, one payload's objects are being built at a time (with the codec's budget
bounding each).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from protocols import Codec, Envelope, Message

__all__ = ["decode_payload"]

M = TypeVar("M", bound=Message)


@functools.cache
def _thread() -> ThreadPoolExecutor:
    # Made on the first large payload: most hosts never need it.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="raymesh-decode")


async def decode_payload(codec: Codec, env: Envelope, expect: type[M], threshold: int) -> M:
    """Return `env`'s payload as an `expect`; off the loop if it is over `threshold` bytes.

    Raises:
        ProtocolError: As `Codec.decode_message`.
    """
    if len(env.payload) <= threshold:
        return codec.decode_message(env, expect)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_thread(), codec.decode_message, env, expect)
