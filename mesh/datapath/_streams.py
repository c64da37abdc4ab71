"""A streamed ask at the host that handles it: its bounded sink, and the call it is served on.

A streamed ask comes as one Ray streaming-generator call (`AgentHost.stream`). It passes
the same sequencing gate and frame acceptance as any ask, and waits in the mailbox like
one; its handler's chunks go into a `StreamSink` (`_sink`) of ``stream_buffer_chunks``
frames, which the call yields to the reader in batches (what is queued when the reader
takes the next), then the reply frame. A full sink makes `emit` wait, and Ray holds at
most `RAY_BATCHES` (`_sink`) batches the reader has not taken (its generator backpressure): a slow
reader slows the handler, and a stream never holds more than (1 + `RAY_BATCHES`) times
the buffer. A reader that stops cancels the call, and so the handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from mesh.datapath._acceptance import FrameAcceptance
from mesh.datapath._dispatch import Dispatcher
from mesh.datapath._replies import Replies
from mesh.datapath._sequencing import SequencingGate
from mesh.datapath._sink import StreamSink

__all__ = ["StreamServer"]


class StreamServer:
    """Serves the streamed asks of one host: admits each, then yields its frames."""

    def __init__(
        self,
        *,
        buffer: int,
        gate: SequencingGate,
        acceptance: FrameAcceptance,
        dispatcher: Dispatcher,
        replies: Replies,
    ) -> None:
        self._buffer = buffer
        self._gate = gate
        self._acceptance = acceptance
        self._dispatcher = dispatcher
        self._replies = replies

    async def serve(self, link_id: str, seq: int, frame: bytes) -> AsyncIterator[list[bytes]]:
        """Take the streamed ask `frame` from `link_id`; yield its chunk frames, then its reply.

        Leaving early (the reader cancelled the call) cancels the handler.
        """
        if not self._gate.enter(link_id, seq):
            await self._gate.wait_turn(link_id, seq)
        sink = StreamSink(buffer=self._buffer, encode=self._replies.chunk_frame)
        try:
            error = await self._acceptance.accept(frame, link_id, call_waiter=sink.done,
                                                  sink=sink)  # fmt: skip
        finally:
            self._gate.release(link_id, seq)
        if error is not None:
            yield [self._replies.error_frame_for(frame, error)]
            return
        try:
            async for batch in sink.batches():
                yield batch
        finally:
            if not sink.done.done() and sink.env is not None:
                self._dispatcher.cancel(sink.env.id)
