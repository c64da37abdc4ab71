"""Reading a streamed ask: its chunk frames and its reply, from the peer's `stream` call.

The ask goes as one Ray streaming-generator call to the peer's host (`AgentHost.stream`),
from a handler or from the edge alike: the edge cannot be called, and a generator call
needs no callback, so one way serves both. Each frame the call yields is decoded with
the endpoint's codec (its decode limits and signature check), must come from the agent
and incarnation asked and answer this ask, and is a chunk, or the reply that ends the
stream. The deadline bounds each wait; leaving early cancels the call and the handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

import ray

from mesh.datapath._letters import DeadLetterLog
from mesh.datapath._peers import PeerDirectory
from mesh.datapath._raycalls import translate
from mesh.datapath._sink import RAY_BATCHES
from mesh.datapath._typeshare import TypeShare
from mesh.errors import DeadlineExceededError, DecodeError, MeshError, PeerDeadError
from protocols import Chunk, Codec, Envelope, Kind, Message, MisdirectedError, StreamEnd

__all__ = ["StreamReader"]

ReadReply = Callable[[Envelope, type[Message] | None], Awaitable[Message | None]]


class StreamReader:
    """Sends streamed asks for one endpoint and reads what comes back.

    Args:
        peers: The endpoint's links.
        types: Where a script's message classes are published before they are sent.
        letters: The endpoint's dead letters.
        read_reply: Opens a reply envelope (the endpoint's, as for an ask).
        cancel: Tells a peer to stop handling a message (the asker gave up).
        counted: Counts a message sent.
    """

    def __init__(
        self,
        *,
        codec: Codec,
        peers: PeerDirectory,
        types: TypeShare,
        letters: DeadLetterLog,
        read_reply: ReadReply,
        cancel: Callable[[str, str], None],
        counted: Callable[[Envelope], None],
    ) -> None:
        self._codec = codec
        self._peers = peers
        self._types = types
        self._letters = letters
        self._read_reply = read_reply
        self._cancel = cancel
        self._counted = counted

    async def read(
        self,
        env: Envelope,
        msg: Message,
        expect: type[Message] | None,
        on_spent: Callable[[dict[str, float]], None] | None,
    ) -> AsyncGenerator[Chunk | StreamEnd, None]:
        """Send `msg`, the streamed ask `env`; yield its chunks, then `StreamEnd` with its reply.

        Raises:
            DeadlineExceededError: The stream did not end by the ask's deadline.
            PeerNotFoundError, PeerDeadError: No live peer, or it died meanwhile.
            MeshError: The error the handler ended with, or a refused frame.
        """
        if type(msg) not in self._types.settled:
            await self._types.share(msg)
        reading = self._read(env, expect, on_spent)
        try:
            async for item in reading:
                yield item
        except MeshError as exc:
            if isinstance(exc, PeerDeadError):
                self._peers.forget(env.recipient)  # the next send looks up its successor
            self._letters.undelivered(env, exc)
            raise exc.with_context(trace_id=env.trace_id) from None
        finally:
            await reading.aclose()  # at once: a reader that stops cancels the handler

    async def _read(
        self,
        env: Envelope,
        expect: type[Message] | None,
        on_spent: Callable[[dict[str, float]], None] | None,
    ) -> AsyncGenerator[Chunk | StreamEnd, None]:
        peer = env.recipient
        assert env.deadline is not None  # every ask has one
        link = await self._peers.link(peer, trace_id=env.trace_id)
        env.to_incarnation = link.incarnation  # a frame is bound to one incarnation
        calls = link.open_stream(self._codec.encode(env), RAY_BATCHES)
        self._counted(env)
        ended = False
        try:
            while True:
                for frame in await self._next(calls, env):
                    answer = self._codec.decode(frame)
                    self._check(env, answer, link.incarnation)
                    if answer.kind is Kind.CHUNK:
                        yield self._codec.decode_message(answer, Chunk)
                        continue
                    ended = True
                    if on_spent is not None and answer.budget:
                        on_spent(answer.budget)
                    yield StreamEnd(await self._read_reply(answer, expect))
                    return
        finally:
            if not ended:
                # The reader stopped, or the stream failed: stop the work below it.
                self._cancel(peer, env.id)
                ray.cancel(calls)

    async def _next(self, calls: ray.ObjectRefGenerator, env: Envelope) -> list[bytes]:
        left = env.deadline - time.time() if env.deadline is not None else None
        try:
            async with asyncio.timeout(left):
                batch: list[bytes] = await (await calls.__anext__())
        except TimeoutError:
            raise DeadlineExceededError(
                f"the stream from {env.recipient!r} of {env.type!r} did not end by its deadline",
                agent=env.recipient,
                trace_id=env.trace_id,
                hint="raise the timeout, or make the handler faster",
            ) from None
        except StopAsyncIteration:
            raise DecodeError(
                f"the stream from {env.recipient!r} ended without a reply",
                agent=env.recipient,
                trace_id=env.trace_id,
            ) from None
        except MeshError:
            raise
        except Exception as exc:  # Ray's errors: the actor died, the call failed
            raise translate(exc, agent=env.recipient).with_context(trace_id=env.trace_id) from None
        return batch

    def _check(self, ask: Envelope, answer: Envelope, incarnation: str) -> None:
        # As for a `request` call's result: it must come from the incarnation asked,
        # answer this ask, and be a chunk, a reply or an error.
        if (
            answer.sender == ask.recipient
            and answer.from_incarnation == incarnation
            and answer.correlation_id == ask.id
            and answer.kind in (Kind.CHUNK, Kind.REPLY, Kind.ERROR)
        ):
            return
        error = MisdirectedError(
            f"a {answer.kind} frame for {answer.correlation_id} from {answer.sender!r} "
            f"(incarnation {answer.from_incarnation}) came on the stream of {ask.id} "
            f"from {ask.recipient!r} (incarnation {incarnation})",
            agent=ask.recipient,
            trace_id=ask.trace_id,
            hint="a bug or a forgery on the way back: the stream's outcome is unknown",
        )
        self._letters.record("wrong_peer", answer, error)
        raise error
