"""Streamed asks from the edge: `Mesh.stream`, and a task whose answer is printed as it forms.

The edge reads a stream as any handler does (`Endpoint.stream`): one Ray streaming call
to the agent's host, whose frames are the chunks and then the reply.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.datapath import Endpoint
from protocols import Chunk, Message, Stream

__all__ = ["open_stream", "stream_answer"]


def open_stream(
    edge: Endpoint,
    name: str,
    msg: Message,
    *,
    timeout: float | None = None,
    trace_id: str | None = None,
    budget: dict[str, float] | None = None,
) -> Stream:
    """Return the `Stream` of agent `name`'s answer to `msg`; it is sent on first read."""
    return edge.stream(name, msg, timeout=timeout, trace_id=trace_id, budget=budget)


async def stream_answer(
    edge: Endpoint,
    name: str,
    msg: Message,
    *,
    timeout: float,
    trace_id: str | None,
    on_chunk: Callable[[Chunk], object],
) -> Message | None:
    """Ask `name` with a stream, give each chunk to `on_chunk`, and return the reply."""
    async with open_stream(edge, name, msg, timeout=timeout, trace_id=trace_id) as stream:
        async for chunk in stream:
            on_chunk(chunk)
        return stream.reply
