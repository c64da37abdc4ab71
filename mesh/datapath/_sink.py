"""The sink of one streamed ask at its handler: a bounded queue of chunk frames, then the reply.

Its bound (``stream_buffer_chunks``) is what makes a slow reader slow the handler: a
full sink makes `emit` wait, so a stream's memory is bounded whatever the handler does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from protocols import Chunk, Envelope

__all__ = ["RAY_BATCHES", "StreamSink"]

#: Batches of frames Ray holds for a reader that has not taken them (its backpressure).
RAY_BATCHES = 2


class StreamSink:
    """The encoded chunks of one streamed ask, at most `buffer` of them, then its reply.

    Args:
        buffer: Chunks held before `put` waits for the reader.
        encode: Makes the chunk frame answering an ask.
    """

    def __init__(self, *, buffer: int, encode: Callable[[Envelope, Chunk], bytes]) -> None:
        self._buffer = buffer
        self._encode = encode
        self._frames: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        #: The reply frame, set as a `request` call's waiter is (`Replies.send`).
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.done.add_done_callback(lambda _done: self._ready.set())
        self.env: Envelope | None = None  # the ask, once admitted
        self._seq = 0
        #: Chunks emitted, and when the first one was (for the span's time to first token).
        self.emitted = 0
        self.first_at: float | None = None

    def next_seq(self) -> int:
        """Return the sequence number of this handler's next chunk."""
        seq, self._seq = self._seq, self._seq + 1
        return seq

    async def put(self, chunk: Chunk) -> None:
        """Queue `chunk` for the reader; wait while `buffer` chunks are unread.

        Raises:
            EncodeError: The chunk cannot be sent (too large, not encodable).
        """
        if self.done.done() or self.env is None:
            return  # the ask has ended: nobody reads any more
        while len(self._frames) >= self._buffer:
            self._room.clear()
            await self._room.wait()
        self._frames.append(self._encode(self.env, chunk))
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.emitted += 1
        self._ready.set()

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Yield the chunk frames in order, all those queued at once, then the reply frame.

        A reader as fast as the handler gets each chunk alone, as it is emitted; a slower
        one gets what piled up meanwhile in one batch, one Ray item instead of many.
        """
        while True:
            if self._frames:
                batch = list(self._frames)
                self._frames.clear()
                self._room.set()
                if self.done.done():
                    batch.append(self.done.result())
                    yield batch
                    return
                yield batch
            elif self.done.done():
                yield [self.done.result()]
                return
            else:
                self._ready.clear()
                await self._ready.wait()
