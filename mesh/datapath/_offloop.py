"""Large payloads are decoded off the event loop, so a host keeps answering meanwhile.

Unpacking and validating a payload is pure CPU: a megabyte of it holds the event loop
for milliseconds to seconds, and every other ask to the agent (and its replies, and
its heartbeat) waits. Payloads above ``offloop_decode_bytes`` (a handler's message, or
the reply to one of the participant's asks) are decoded on one thread of the
process's own instead; the loop runs between the decoder's GIL
switches. One thread, not a pool: large decodes take turns, so however many arrive
at once, one payload's objects are being built at a time (with the codec's budget
bounding each).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from protocols import Codec, Envelope, Message

__all__ = ["decode_payload", "decoded"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")


@functools.cache
def _thread() -> ThreadPoolExecutor:
    # Made on the first large payload: most hosts never need it.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="raymesh-decode")


async def decode_payload(codec: Codec, env: Envelope, expect: type[M], threshold: int) -> M:
    """Return `env`'s payload as an `expect`; off the loop if it is over `threshold` bytes.

    Raises:
        ProtocolError: As `Codec.decode_message`.
    """
    return await decoded(env, threshold, lambda: codec.decode_message(env, expect))


async def decoded(env: Envelope, threshold: int, decode: Callable[[], T]) -> T:
    """Return `decode()`, run off the loop if `env`'s payload is over `threshold` bytes."""
    if len(env.payload) <= threshold:
        return decode()
    return await asyncio.get_running_loop().run_in_executor(_thread(), decode)
