"""The edge's asks made together: one `asks` call, whose replies come back as they are ready.

Peers cannot call the edge, so each of its asks used to be a `request` call of its own,
whose result is the reply: at 32 conversations in flight, 32 Ray calls into the agent
where an agent's link would make one. Asks the edge makes in the same loop turn now go
as one Ray streaming-generator call (`AgentHost.asks`): the frames pass the sequencing
gate and frame acceptance together, as a batch does, each ask with a waiter of its own;
the call yields the replies as they are ready, each item all the replies that are
(``[[index, frame], ...]``, `protocols.calls`), and ends with the last. A slow ask holds
back none of the others; a refused one is answered at once, in the first item.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from mesh.datapath._acceptance import FrameAcceptance
from mesh.datapath._replies import Replies
from mesh.datapath._sequencing import SequencingGate
from mesh.errors import MeshError
from protocols.calls import pack_answers

__all__ = ["AskBatches"]


class AskBatches:
    """Serves one host's `asks` calls: admits their asks, then yields replies as they come."""

    def __init__(
        self, *, gate: SequencingGate, acceptance: FrameAcceptance, replies: Replies
    ) -> None:
        self._gate = gate
        self._acceptance = acceptance
        self._replies = replies

    async def serve(self, link_id: str, seq: int, frames: list[bytes]) -> AsyncIterator[bytes]:
        """Take the asks `frames` of call `seq` from `link_id`; yield their answers as ready."""
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[bytes]] = [loop.create_future() for _ in frames]
        if not self._gate.enter(link_id, seq):
            await self._gate.wait_turn(link_id, seq)
        try:
            refusals = await self._acceptance.take_batch(frames, link_id, waiters=waiters)
        finally:
            self._gate.release(link_id, seq)
        refused = {index: MeshError.from_wire(error) for index, error in refusals or ()}
        # Refused asks are answered in the first item; the others as their replies come.
        ready = [(index, self._replies.error_frame_for(frames[index], error))
                 for index, error in refused.items()]  # fmt: skip
        woken = asyncio.Event()
        unanswered = {index for index in range(len(frames)) if index not in refused}

        def done(waiter: asyncio.Future[bytes], index: int) -> None:
            unanswered.discard(index)
            ready.append((index, waiter.result()))
            woken.set()

        for index in unanswered:
            waiters[index].add_done_callback(functools.partial(done, index=index))
        while ready or unanswered:
            if ready:
                answers = ready.copy()
                ready.clear()
                yield pack_answers(answers)
            else:
                woken.clear()
                await woken.wait()
