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

from protocols import Envelope

__all__ = ["is_large", "off_loop"]

T = TypeVar("T")


@functools.cache
def _thread() -> ThreadPoolExecutor:
    # Made on the first large payload: most hosts never need it.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="raymesh-decode")


def is_large(env: Envelope, threshold: int) -> bool:
    """Return True when `env`'s payload should be decoded off the loop.

    Callers test this first and call the decoder inline otherwise: a small payload (the
    common case) then costs no coroutine and no thread hop.
    """
    return len(env.payload) > threshold


async def off_loop(decode: Callable[[], T]) -> T:
    """Return `decode()`, run on the decoding thread while the loop goes on."""
    return await asyncio.get_running_loop().run_in_executor(_thread(), decode)
