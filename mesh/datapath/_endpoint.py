"""The sending half of every participant: the verbs (tell, ask) and their replies.

An agent host and the edge client (the driver's `Mesh`) are both endpoints. They differ
only in how an ask's reply comes back: a host is an actor that peers can call, so the
reply arrives as a frame of its own and is routed to the waiting future; the edge is not
callable, so it sends each ask as one Ray call whose result is the reply. Links to peers
come from the peer directory (`_peers`); the asks waited on, and their deadlock probes,
are kept by the probe rounds (`_probe_rounds`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from mesh.config import MeshConfig
from mesh.datapath._directory import RegistryClient
from mesh.datapath._envelopes import new_envelope
from mesh.datapath._letters import DeadLetterLog
from mesh.datapath._offloop import is_large, off_loop
from mesh.datapath._peers import PeerDirectory
from mesh.datapath._probe_rounds import Outstanding, ProbeRounds
from mesh.datapath._stream_reader import StreamReader
from mesh.datapath._typeshare import TypeShare
from mesh.errors import (
    DeadlineExceededError,
    DeadlockError,
    MeshError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh.observability import DeadLetterBox, get_logger
from protocols import (
    DRIVER,
    Chunk,
    Envelope,
    ErrorReply,
    Kind,
    Message,
    MisdirectedError,
    Stream,
    UnknownMessageTypeError,
)
from protocols.message import is_known
from protocols.wire import NoReply

__all__ = ["Endpoint"]

M = TypeVar("M", bound=Message)


class Endpoint:
    """Sends messages on behalf of one named participant.

    Args:
        name: The participant's name; peers see it as the sender.
        incarnation: Unique per process lifetime of this participant.
        registry: Where peers are looked up.
        types: Where message classes only a script defines are published and learned.
        self_handle: This participant's own host handle, or None at the edge.
    """

    def __init__(
        self,
        *,
        name: str,
        incarnation: str,
        config: MeshConfig,
        registry: RegistryClient,
        types: TypeShare,
        self_handle: Any = None,
    ) -> None:
        self.name = name
        self.incarnation = incarnation
        self.config = config
        self.codec = config.codec()
        self.registry = registry
        self.types = types
        self.is_edge = self_handle is None  # the driver-side client, which peers cannot call
        self.peers = PeerDirectory(name=name, incarnation=incarnation, config=config,
                                   registry=registry, self_handle=self_handle,
                                   on_late=self._late_reply)  # fmt: skip
        # Asks this host is waiting on, by message id, with the peer and incarnation
        # asked: a reply completes one only if it comes from them.
        self.pending: dict[str, tuple[asyncio.Future[Envelope], str, str]] = {}
        # Driver rights travel as a flag in the (signed) header, never in a name.
        self._flags = DRIVER if self.is_edge else 0
        self.probes = ProbeRounds(name=name, config=config, peers=self.peers,
                                  enabled=not self.is_edge and config.watchdogs)  # fmt: skip
        self.sent = 0
        # Sends tried again (same message id) after a dead or missing peer: at_least_once.
        self.retries = 0
        self.sent_by_type: dict[str, int] = {}
        self.dead_letters = DeadLetterBox(name, config.dead_letters_kept)
        self._letters = DeadLetterLog(self.dead_letters, config=config, log=get_logger(agent=name))
        self._streams = StreamReader(
            codec=self.codec, peers=self.peers, types=self.types, letters=self._letters,
            read_reply=self._read_reply, cancel=self._cancel_downstream, counted=self._counted,
        )  # fmt: skip

    def dead_letter(
        self,
        reason: str,
        header: Envelope | None,
        error: BaseException | str,
        *,
        frame_bytes: int | None = None,
    ) -> None:
        """Record a message that was not delivered or not handled, and log it (`_letters`)."""
        self._letters.record(reason, header, error, frame_bytes=frame_bytes)

    def envelope(
        self,
        kind: Kind,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None,
        trace_id: str | None = None,
        timeout: float | None = None,
        budget: dict[str, float] | None = None,
    ) -> Envelope:
        """Return a new envelope for `msg`, continuing `parent`'s chain when there is one.

        Raises:
            EncodeError: `msg` is not a sendable message.
            HopLimitError: The chain would pass the configured maximum of hops.
        """
        return new_envelope(kind, peer, msg, sender=self.name, incarnation=self.incarnation,
                            flags=self._flags, codec=self.codec, config=self.config,
                            parent=parent, trace_id=trace_id, timeout=timeout,
                            budget=budget)  # fmt: skip

    async def tell(self, peer: str, msg: Message, *, parent: Envelope | None = None,
                   trace_id: str | None = None, budget: dict[str, float] | None = None,
                   at_least_once: bool = False) -> None:  # fmt: skip
        """Send `msg` to `peer` and return once the peer has accepted it into its mailbox.

        With `at_least_once`, a peer that is dead or not (yet) registered is looked up
        again and the same frame (the same message id) sent again, until the message's
        deadline or, for a tell without one, ``ask_timeout_s``.
        """
        if type(msg) not in self.types.settled:  # a known class costs no coroutine per send
            await self.types.share(msg)
        env = self.envelope(Kind.TELL, peer, msg, parent=parent, trace_id=trace_id, budget=budget)
        frame = b""
        retry = _Retry(env.deadline or time.time() + self.config.ask_timeout_s)
        while True:
            try:
                link = await self.peers.link(peer, trace_id=env.trace_id)
                if env.to_incarnation != link.incarnation:  # a frame is bound to one incarnation
                    env.to_incarnation = link.incarnation
                    frame = self.codec.encode(env)
                accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                link.send(frame, accepted)
                self._counted(env)
                await accepted
                return
            except MeshError as exc:
                if isinstance(exc, PeerDeadError):
                    self.peers.forget(peer)
                if not (at_least_once and await retry.again(exc)):
                    self._letters.undelivered(env, exc)
                    raise exc.with_context(trace_id=env.trace_id) from None
                self.retries += 1

    @overload
    async def ask(self, peer: str, msg: Message, *, parent: Envelope | None = ...,
                  timeout: float | None = ..., trace_id: str | None = ...,
                  expect: None = ..., budget: dict[str, float] | None = ...,
                  on_spent: Callable[[dict[str, float]], None] | None = ...,
                  at_least_once: bool = ...) -> Message | None: ...  # fmt: skip
    @overload
    async def ask(self, peer: str, msg: Message, *, parent: Envelope | None = ...,
                  timeout: float | None = ..., trace_id: str | None = ...,
                  expect: type[M], budget: dict[str, float] | None = ...,
                  on_spent: Callable[[dict[str, float]], None] | None = ...,
                  at_least_once: bool = ...) -> M: ...  # fmt: skip

    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
        expect: type[Message] | None = None,
        budget: dict[str, float] | None = None,
        on_spent: Callable[[dict[str, float]], None] | None = None,
        at_least_once: bool = False,
    ) -> Message | None:
        """Send `msg` to `peer` and return its reply (None if the handler returned None).

        `budget` travels with the ask; what the peer reports spent goes to `on_spent`.
        With `at_least_once`, a peer that died (or is not registered yet) is looked up
        again and the same frame sent again until the deadline; the peer's dedup makes
        the handler run once per message id (see `mesh.datapath._durable`).
        """
        if type(msg) not in self.types.settled:
            await self.types.share(msg)
        env = self.envelope(Kind.ASK, peer, msg, parent=parent, trace_id=trace_id,
                            timeout=timeout, budget=budget)  # fmt: skip
        assert env.deadline is not None  # every ask has one
        waiting = Outstanding(peer, time.time(), env.trace_id, parent.id if parent else None)
        self.probes.waits(env.id, waiting)
        retry = _Retry(env.deadline)
        try:
            async with asyncio.timeout_at(_loop_time(env.deadline)):
                while True:
                    try:
                        reply = await self._ask_once(peer, env, waiting)
                        break
                    except (PeerDeadError, PeerNotFoundError) as exc:
                        if isinstance(exc, PeerDeadError):
                            self.peers.forget(peer)
                        if not (at_least_once and await retry.again(exc)):
                            raise
                        self.retries += 1
        except TimeoutError:
            if retry.last is not None:  # it never reached a live peer
                self._letters.undelivered(env, retry.last)
            self._cancel_downstream(peer, env.id)
            raise DeadlineExceededError(
                f"no reply from {peer!r} to {env.type!r} by its deadline "
                f"({env.deadline - time.time():+.3f}s)",
                agent=peer,
                trace_id=env.trace_id,
                hint="raise the timeout, or make the handler faster",
            ) from None
        except asyncio.CancelledError:
            self._cancel_downstream(peer, env.id)
            raise
        except MeshError as exc:
            self._letters.undelivered(env, exc)
            if isinstance(exc, DeadlockError):
                self._cancel_downstream(peer, env.id)
            raise exc.with_context(agent=peer, trace_id=env.trace_id) from None
        finally:
            del self.probes.outstanding[env.id]
        if on_spent is not None and reply.budget:
            on_spent(reply.budget)
        return await self._read_reply(reply, expect)

    def stream(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
        expect: type[Message] | None = None,
        budget: dict[str, float] | None = None,
        on_spent: Callable[[dict[str, float]], None] | None = None,
        forward: Callable[[Chunk], Awaitable[None]] | None = None,
    ) -> Stream:
        """Ask `peer` and return the `Stream` of its chunks and reply; sent on first read.

        As `ask`, but the handler's chunks come as they are emitted; `forward` is given
        each chunk as it is read (a handler passing its worker's chunks up).

        Raises:
            EncodeError: `msg` is not a sendable message.
            HopLimitError: The chain would pass the configured maximum of hops.
        """
        env = self.envelope(Kind.ASK, peer, msg, parent=parent, trace_id=trace_id,
                            timeout=timeout, budget=budget)  # fmt: skip
        return Stream(self._streams.read(env, msg, expect, on_spent), trace_id=env.trace_id,
                      forward=forward)  # fmt: skip

    async def _ask_once(self, peer: str, env: Envelope, waiting: Outstanding) -> Envelope:
        link = await self.peers.link(peer, trace_id=env.trace_id)
        env.to_incarnation = link.incarnation  # a frame is bound to one incarnation
        frame = self.codec.encode(env)
        self._counted(env)
        if self.is_edge:
            # Peers cannot call the edge: the reply is the result of the ask's own call.
            waiting.future = link.request(frame)
            answer = self.codec.decode(await waiting.future)
            self._from_asked(env, answer, link.incarnation)
            return answer
        waiting.future = waiter = asyncio.get_running_loop().create_future()
        self.pending[env.id] = (waiter, peer, link.incarnation)
        try:
            link.send(frame, waiter, ask_id=env.id)
            reply: Envelope | bytes = await waiter
        finally:
            self.pending.pop(env.id, None)
            link.settled(env.id)
        # Bytes when the ask left alone, as a `request` call whose result is the reply.
        return reply if isinstance(reply, Envelope) else self.codec.decode(reply)

    def _counted(self, env: Envelope) -> None:
        self.sent += 1
        self.sent_by_type[env.type] = self.sent_by_type.get(env.type, 0) + 1

    def _from_asked(self, ask: Envelope, reply: Envelope, incarnation: str) -> None:
        """Refuse a call's result that does not come from the incarnation asked.

        The call itself binds its result to the ask (Ray returns it from the actor
        called), so this catches a host answering in another's name or a bug.
        """
        if reply.sender != ask.recipient or reply.from_incarnation != incarnation:
            error = MisdirectedError(
                f"the answer to {ask.id} came from {reply.sender!r} "
                f"(incarnation {reply.from_incarnation}) for {reply.correlation_id}, "
                f"not from {ask.recipient!r} (incarnation {incarnation})",
                agent=ask.recipient,
                trace_id=ask.trace_id,
                hint="a bug or a forgery on the way back: the ask's outcome is unknown",
            )
            self.dead_letter("wrong_peer", reply, error)
            raise error

    def _cancel_downstream(self, peer: str, ask_id: str) -> None:
        # The asker gave up: stop the work it started, so no orphan keeps spending.
        self.peers.notify(peer, lambda handle: handle.cancel.remote(ask_id))

    async def _read_reply(self, reply: Envelope, expect: type[Message] | None) -> Message | None:
        # A reply of a class only another participant's script defines is looked up in
        # the type catalog first; a tag nobody published is a dead letter here.
        if not is_known(reply.type) and (expect is None or expect.type_tag != reply.type):
            await self.types.learn(reply.type)
        try:
            if is_large(reply, self.config.offloop_decode_bytes):
                return await off_loop(functools.partial(self.open_reply, reply, expect))
            return self.open_reply(reply, expect)
        except UnknownMessageTypeError as exc:
            self.dead_letter("schema", reply, exc)
            raise

    def open_reply(self, reply: Envelope, expect: type[Message] | None) -> Message | None:
        """Return the message in a reply envelope, or raise the error it carries."""
        if reply.kind is Kind.ERROR:
            carried = self.codec.decode_message(reply, ErrorReply).to_error()
            raise carried.with_context(agent=reply.sender, trace_id=reply.trace_id)
        if expect is not None:
            return self.codec.decode_message(reply, expect)
        message = self.codec.decode_message(reply)
        return None if isinstance(message, NoReply) else message

    def _late_reply(self, frame: bytes) -> None:
        self._letters.late(self.codec, frame)

    def close(self) -> None:
        """Fail everything still waiting on a link and cancel the links' calls."""
        self.probes.close()
        self.peers.close()


class _Retry:
    """Backoff between resends of one message across a peer's restart, up to a deadline."""

    _FIRST_S = 0.05
    _MAX_S = 1.0

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._delay = self._FIRST_S
        self.last: MeshError | None = None

    async def again(self, error: MeshError) -> bool:
        """Wait before the next attempt; False when `error` is not worth a resend or time is up.

        Only a dead or missing peer is: a supervisor may be starting its successor.
        Other errors (a full mailbox, a refusal) come from a live peer and are final.
        """
        if not isinstance(error, PeerDeadError | PeerNotFoundError):
            return False
        self.last = error
        left = self._deadline - time.time()
        if left <= 0:
            return False
        await asyncio.sleep(min(self._delay, left))
        self._delay = min(self._delay * 2, self._MAX_S)
        return True


def _loop_time(deadline: float) -> float:
    # asyncio deadlines are on the loop's monotonic clock; envelope deadlines are epoch.
    return asyncio.get_running_loop().time() + (deadline - time.time())
