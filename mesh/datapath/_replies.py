"""How a host answers an ask: the reply envelope, and the way back to the asker.

An ask comes in one of two ways, and its answer goes back the same way: an ask sent
as a `request` call is answered as the call's result (its waiter, kept here by message
id), any other in a batch call. The reply to an ask of a batch call goes back as that
call's result too, carried, if it is ready while the call lingers (`CARRY_TURNS`) and
nothing this host sent the asker before it is still on its way; otherwise on the
host's own link to the asker. Every ask a host took gets exactly one answer this way,
or a dead letter when the way back failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesh.datapath._endpoint import Endpoint
from mesh.errors import MailboxFullError, MeshError, PeerNotFoundError
from protocols import Chunk, Envelope, ErrorReply, Kind, Message, ProtocolError
from protocols.wire import NoReply

if TYPE_CHECKING:
    from mesh.datapath._sink import StreamSink

__all__ = ["CARRY_TURNS", "Carry", "Replies"]

#: Loop turns a batch call that brought asks waits for their replies before it returns.
#: A handler that does not wait on anything answers in the first: its worker wakes in
#: the turn after the batch was queued. One that waits (a model, another agent) answers
#: on the link later, and costs the call these few turns.
CARRY_TURNS = 3


@dataclass(slots=True, eq=False)
class Carry:
    """The replies one batch call takes back to its sender as its result.

    Attributes:
        waiting: The ids of the call's asks not yet answered, while it lingers.
        frames: The reply frames it carries.
    """

    waiting: set[str] = field(default_factory=set)
    frames: list[bytes] = field(default_factory=list)


class Replies:
    """Builds and routes one host's replies.

    Args:
        name: The host's agent name, the sender of its replies.
        endpoint: Its endpoint: the codec, the links back to askers, the dead letters.
    """

    def __init__(self, *, name: str, endpoint: Endpoint) -> None:
        self._name = name
        self._endpoint = endpoint
        self._codec = endpoint.codec
        # Asks taken from `request` calls, by message id: their replies are the call
        # results. Invariant: an id leaves this map when its waiter gets its answer.
        self.call_waiters: dict[str, asyncio.Future[bytes]] = {}
        # The sinks of streamed asks, by message id, from admission until handled.
        self.sinks: dict[str, StreamSink] = {}
        # Asks of batch calls that may still carry their replies, by message id.
        # Invariant: an id is here exactly while it is in its carry's `waiting`.
        self._carries: dict[str, Carry] = {}

    def carry(self, env: Envelope, carry: Carry) -> None:
        """Let the reply to ask `env`, which came in a batch call, go back in `carry`."""
        self._carries[env.id] = carry
        carry.waiting.add(env.id)

    def uncarry(self, carry: Carry) -> None:
        """End `carry`: its call returns, and replies still to come take the link."""
        for ask_id in carry.waiting:
            del self._carries[ask_id]
        carry.waiting.clear()

    def envelope(
        self,
        env: Envelope,
        outcome: Message | MeshError | None,
        spent: dict[str, float] | None = None,
    ) -> Envelope:
        """Return the reply to ask `env`: its result, NoReply for None, or the error."""
        if isinstance(outcome, MeshError):
            kind, body = Kind.ERROR, self._codec.encode_message(ErrorReply.of(outcome))
            tag = ErrorReply.type_tag
        else:
            message = NoReply() if outcome is None else outcome
            try:
                kind, body, tag = Kind.REPLY, self._codec.encode_message(message), message.type_tag
            except MeshError as exc:
                kind, tag = Kind.ERROR, ErrorReply.type_tag
                body = self._codec.encode_message(ErrorReply.of(exc.with_context(
                    agent=self._name, trace_id=env.trace_id)))  # fmt: skip
        return self._answering(env, kind, tag or "", body, spent or None)

    def chunk_frame(self, env: Envelope, chunk: Chunk) -> bytes:
        """Return the frame of `chunk`, a piece of the answer to the streamed ask `env`.

        Raises:
            EncodeError: The chunk is too large or not encodable.
        """
        body = self._codec.encode_message(chunk)
        return self._codec.encode(self._answering(env, Kind.CHUNK, Chunk.type_tag or "", body))

    def _answering(
        self,
        env: Envelope,
        kind: Kind,
        tag: str,
        body: bytes,
        spent: dict[str, float] | None = None,
    ) -> Envelope:
        return Envelope(
            kind=kind,
            type=tag,
            sender=self._name,
            recipient=env.sender,
            payload=body,
            trace_id=env.trace_id,
            span_id=env.span_id,
            parent_span_id=env.parent_span_id,
            correlation_id=env.id,
            deadline=env.deadline,
            hops=env.hops,
            budget=spent,
            # Bound to the asker's incarnation that asked: a successor refuses it.
            to_incarnation=env.from_incarnation,
            from_incarnation=self._endpoint.incarnation,
        )

    async def send(self, env: Envelope, reply: Envelope) -> None:
        """Send `reply` to the asker of `env`, by the way the ask came."""
        try:
            frame = self._codec.encode(reply)
        except MeshError as exc:  # e.g. a reply larger than max_frame_bytes
            exc.agent = self._name  # the replier failed, not the asker
            frame = self._codec.encode(self.envelope(env, exc))
        waiter = self.call_waiters.pop(env.id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(frame)
            return
        carry = self._carries.pop(env.id, None)
        if carry is not None:
            carry.waiting.discard(env.id)
            # Never ahead of what this host sent the asker before: only when nothing
            # is queued on the link back or in a call on it.
            if self._endpoint.peers.quiet(env.sender):
                carry.frames.append(frame)
                return
        try:
            link = await self._endpoint.peers.link(env.sender, trace_id=env.trace_id)
        except MeshError as exc:
            self._lost(env, exc)
            return
        # Not awaited: the worker goes on to the next message while the reply travels.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: self._lost(env, f.exception()))
        link.send(frame, done)

    def answer_call(self, env: Envelope, error: MeshError) -> None:
        """End the `request` call of `env`, if it is one still open, with `error`.

        For asks that will get no reply of their own (expired, cancelled): the call would
        otherwise never return, though its caller may have gone.
        """
        waiter = self.call_waiters.pop(env.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(self._codec.encode(self.envelope(env, error)))

    def error_frame_for_id(self, message_id: str, error: MeshError) -> bytes:
        """Return an error reply to the ask `message_id`, whose header is gone."""
        env = Envelope(kind=Kind.ASK, type="raymesh.unknown/1", sender="edge",
                       recipient=self._name, payload=b"", id=message_id)  # fmt: skip
        return self._codec.encode(self.envelope(env, error))

    def error_frame_for(self, frame: bytes, error: MeshError) -> bytes:
        """Return an error reply to `frame`: a `request` call needs one even if unreadable."""
        try:
            env = self._codec.decode(frame)
        except ProtocolError:
            env = Envelope(kind=Kind.ASK, type="raymesh.unknown/1", sender="edge",
                           recipient=self._name, payload=b"")  # fmt: skip
        return self._codec.encode(self.envelope(env, error))

    def _lost(self, env: Envelope, error: BaseException | None) -> None:
        if error is None:
            return
        reason = (
            "no_peer" if isinstance(error, PeerNotFoundError)
            else "mailbox_full" if isinstance(error, MailboxFullError)
            else "peer_dead"
        )  # fmt: skip
        self._endpoint.dead_letter(reason, env, f"the reply to this ask was not delivered: {error}")
