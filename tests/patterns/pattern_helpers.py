"""Small in-memory agents the pattern tests are built from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from protocols.message import Message
from protocols.messenger import Handler, InMemoryMessenger
from protocols.patterns import Reply, Request


def answering(make: Callable[[Request], str]) -> Handler:
    """Return a handler that replies to a `Request` with ``make(request)``."""

    async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Request)
        return Reply(text=make(msg))

    return handle


def failing(reason: str = "boom") -> Handler:
    """Return a handler that always raises RuntimeError(reason)."""

    async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
        raise RuntimeError(reason)

    return handle


def stalling(started: asyncio.Event | None = None, seen: list[str] | None = None) -> Handler:
    """Return a handler that never answers; it notes its start and its cancellation."""

    async def handle(msg: Message, m: InMemoryMessenger) -> Message | None:
        if started is not None:
            started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if seen is not None:
                seen.append(m.agent)
            raise
        return None

    return handle
