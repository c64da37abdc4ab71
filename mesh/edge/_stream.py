"""Streamed asks from the edge: `Mesh.stream`, and an answer printed as it forms.

The edge reads a stream as any handler does (`Endpoint.stream`): one Ray streaming call
to the agent's host, whose frames are the chunks and then the reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mesh.datapath import Endpoint
from mesh.security import redact
from protocols import Message, Stream

__all__ = ["MaskedText", "open_stream", "read_answer"]


def open_stream(
    edge: Endpoint,
    name: str,
    msg: Message,
    *,
    timeout: float | None = None,
    trace_id: str | None = None,
) -> Stream:
    """Return the `Stream` of agent `name`'s answer to `msg`; it is sent on first read."""
    return edge.stream(name, msg, timeout=timeout, trace_id=trace_id)


class MaskedText:
    """Streamed text made safe to print: held back to its last space, then redacted.

    A secret never contains a space, so none is printed cut in two, where the redactor
    would not know it.
    """

    _SPACE = re.compile(r"\s")

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        """Take `text`; return what can be printed now (redacted), maybe nothing."""
        self._held += text
        cut = max((m.end() for m in self._SPACE.finditer(self._held)), default=0)
        ready, self._held = self._held[:cut], self._held[cut:]
        return redact(ready) if ready else ""

    def rest(self) -> str:
        """Return what is still held (redacted), at the end of the stream."""
        rest, self._held = self._held, ""
        return redact(rest) if rest else ""


async def read_answer(stream: Stream, on_text: Callable[[str], object]) -> Message | None:
    """Read `stream` to its end, giving its text to `on_text` as it forms (redacted)."""
    masked = MaskedText()
    async with stream:
        async for chunk in stream:
            if text := masked.feed(chunk.text):
                on_text(text)
        if rest := masked.rest():
            on_text(rest)
        return stream.reply
