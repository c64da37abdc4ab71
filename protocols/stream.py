"""Streamed asks: the `Chunk` a handler emits, and the `Stream` a reader iterates.

A streamed ask is an ask whose handler may emit chunks before its reply. Chunks travel
as frames of kind `Kind.CHUNK`, answering the ask by `correlation_id` like its reply,
under the same decode limits and signing as every frame. The reader's `Stream` is an
async iterator of chunks and, once they end, holds the typed reply. Nothing here knows
how frames travel: the runtime hands `Stream` a source of chunks ending in `StreamEnd`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from pydantic import ConfigDict

from protocols.message import Message

__all__ = ["Chunk", "Stream", "StreamEnd"]


class Chunk(Message, type="raymesh.chunk/1"):
    """A piece of a streamed answer, labelled with where it came from.

    Attributes:
        text: A piece of text (e.g. a model's tokens).
        data: A structured piece.
        agent: The agent that emitted it (a worker's, when an orchestrator forwards).
        span_id: The span of the handler that emitted it.
        seq: 0, 1, 2... per stream, per emitting agent.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str = ""
    data: dict[str, Any] | None = None
    agent: str
    span_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream's source: the handler's reply (None if it returned None)."""

    reply: Message | None


#: What the runtime gives a `Stream`: chunks, then one `StreamEnd`, or a raised MeshError.
Source = AsyncIterator[Chunk | StreamEnd]


class Stream:
    """An async iterator of `Chunk`, then the typed reply in `reply`.

    Use it as an async context manager: leaving the block early (or `aclose`) cancels
    the handler that produces it, and whatever that handler asked in turn::

        async with mesh.stream("writer", Prompt(text="...")) as s:
            async for chunk in s:
                print(chunk.text, end="")
        print(s.reply)

    Errors (deadline, peer dead, the handler's own) are raised from the iteration as
    typed `MeshError` subclasses.
    """

    __slots__ = ("_done", "_forward", "_reply", "_source", "trace_id")

    def __init__(
        self,
        source: Source,
        *,
        trace_id: str,
        forward: Callable[[Chunk], Awaitable[None]] | None = None,
    ) -> None:
        self._source = source
        self._forward = forward
        self._reply: Message | None = None
        self._done = False
        #: The conversation's trace id, known before the first chunk.
        self.trace_id = trace_id

    @property
    def reply(self) -> Message | None:
        """The handler's reply once the chunks have ended (None before, or if it gave none)."""
        return self._reply

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Chunk:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await anext(self._source)
        except BaseException:
            self._done = True
            raise
        if isinstance(item, StreamEnd):
            self._reply, self._done = item.reply, True
            raise StopAsyncIteration
        if self._forward is not None:
            await self._forward(item)
        return item

    async def result(self) -> Message | None:
        """Read (and forward, if forwarding) the chunks left; return the reply."""
        async for _chunk in self:
            pass
        return self._reply

    async def aclose(self) -> None:
        """Stop reading: the handler producing the stream, and its own asks, are cancelled."""
        self._done = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
