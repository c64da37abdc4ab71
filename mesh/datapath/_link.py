"""An outbound link: one sender's ordered, coalescing channel to one peer incarnation.

Frames are queued in an outbox and shipped by a pump. While fewer than `max_inflight`
Ray calls are outstanding, frames leave at the end of the event loop's current turn
(no added latency when traffic is light, and the frames sent in one turn, such as the
replies of handlers woken together, go in one call); otherwise frames accumulate and
the next call carries all of them, up to `max_batch`. Per-call overhead, not bytes, is
what limits Ray (on this machine a call costs its two processes about a millisecond of
CPU), so under load one call carries many messages, and a batch call's result brings
back the replies to its asks that the peer had ready (see `_replies`), sparing the peer
a call of its own to answer. An ask that leaves alone (nothing
else queued, and no other lone ask's call in flight) goes at once as a `request` call
whose result is its reply, even while a batch call is in flight: one Ray call for the
round trip instead of two, and no wait for the batch, the lowest latency when traffic
is light or arrives one ask at a time (conversations waiting on models).

The edge cannot be called, so its asks never go in a batch call: one it makes alone goes
as a `request` call, and those it makes in the same loop turn go together as one `asks`
call, whose replies come back as they are ready (`_ask_batches`).

Each call carries the link id and a sequence number; the receiver admits calls in
sequence order, which is how raymesh keeps per-pair order on top of async actors that
do not (DESIGN.md, "Facts about Ray"). Every link has an id of its own: a sender that
opens a second link to the same incarnation (the first one failed while the peer
lived on) starts a new sequence, which the receiver must not take for a replay of the
old one's numbers.

Invariant: every future handed out by `send` or `request` is completed exactly once:
by the receiver's acceptance (tells), by its refusal, by the peer's death, or, for
asks, by the reply that the endpoint routes to it.

A peer's death fails a message in one of two ways, by what the link knows of it: a
frame that never left the outbox, or was sent after the death was known, fails with
`DiedBeforeRunError` (it had no effect); a frame in a call that was under way, or that
the peer had accepted, fails with `OutcomeUnknownError` (Ray cannot say whether a call
to an actor that died ran).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from mesh.datapath._raycalls import translate
from mesh.errors import (
    DiedBeforeRunError,
    MeshError,
    OutboxFullError,
    OutcomeUnknownError,
    PeerDeadError,
)
from protocols import DecodeError, ProtocolError
from protocols.calls import PEER_HOST_HINT, WHOLE_CALL, open_answers, open_result, pack_call

__all__ = ["Link", "link_id", "sender_of"]


def link_id(sender: str, serial: int) -> str:
    """Return the id of the `serial`-th link opened by `sender` (``name#incarnation``)."""
    return f"{sender}/{serial}"


def sender_of(link: str) -> tuple[str, str]:
    """Return the agent name and incarnation of the sender of link id `link`."""
    name, _, rest = link.rpartition("#")
    return name, rest.partition("/")[0]


class Link:
    """The channel from one endpoint to one incarnation of a peer agent.

    Args:
        link_id: This link's id, from `link_id`: the sender's identity and a serial.
        peer: The peer's agent name.
        incarnation: The peer's incarnation this link is bound to.
        handle: The peer host's Ray actor handle.
        reply_to: The sender's own host handle, sent once so the peer can answer directly;
            None for the edge, which takes replies as call results instead.
        max_outbox: Frames queued (not yet shipped) before sends are refused.
        on_late: Given a reply frame that came back after its ask had ended.
        on_carried: Given the reply frames a batch call brought back, with the peer and
            incarnation they came from.
    """

    def __init__(
        self,
        *,
        link_id: str,
        peer: str,
        incarnation: str,
        handle: Any,
        reply_to: Any,
        max_batch: int,
        max_inflight: int,
        max_outbox: int,
        on_late: Callable[[bytes], None],
        on_carried: Callable[[list[bytes], str, str], None],
    ) -> None:
        self.peer = peer
        self.incarnation = incarnation
        self.handle = handle
        self._link_id = link_id
        self._reply_to = reply_to
        self._edge = reply_to is None  # asks' replies come back only as call results
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._max_outbox = max_outbox
        self._on_late = on_late
        self._on_carried = on_carried
        # (frame, future, is_ask)
        self._outbox: deque[tuple[bytes, asyncio.Future[Any], bool]] = deque()
        self._seq = 0
        self._inflight = 0
        self._requests = 0
        self._pump_due = False  # a pump is scheduled for the end of this loop turn
        self._closed = False  # by its sender: calls that end later are ignored
        # Asks the peer accepted and has not answered, by message id.
        self._awaiting: dict[str, asyncio.Future[Any]] = {}
        self._readers: set[asyncio.Task[None]] = set()  # of the edge's `asks` calls
        self.dead: MeshError | None = None
        self._watch()

    def send(self, frame: bytes, future: asyncio.Future[Any], *, ask_id: str | None = None) -> None:
        """Queue `frame`; `future` completes on acceptance (tells) or by the reply (asks).

        An ask's reply is the envelope its sender routes to `future`, or, if the ask left
        alone as a `request` call, the encoded reply frame (bytes) set here.
        """
        if self.dead is not None:
            future.set_exception(_never_ran(self.dead))
            return
        if len(self._outbox) >= self._max_outbox:
            # Bounded memory at the sender too: a peer that takes frames slower than
            # they are sent pushes back here once its mailbox and the calls in flight
            # are full.
            future.set_exception(OutboxFullError(
                f"the outbox to {self.peer!r} is full ({self._max_outbox} frames)",
                agent=self.peer,
                hint="slow down: the peer takes messages slower than they are sent",
            ))  # fmt: skip
            return
        if ask_id is not None:
            self._awaiting[ask_id] = future  # until its sender calls `settled`
        self._outbox.append((frame, future, ask_id is not None))
        if not self._pump_due:
            self._pump_due = True
            asyncio.get_running_loop().call_soon(self._pump_soon)

    @property
    def idle(self) -> bool:
        """Whether nothing is queued here and no batch or `request` call is out."""
        return not self._outbox and self._inflight == 0 and self._requests == 0

    def settled(self, ask_id: str) -> None:
        """Forget ask `ask_id`, sent with `send`, once it has ended (whatever its outcome).

        Called by its sender, not as a callback of its future: a callback per ask was a
        scheduled handle per ask on the event loop.
        """
        self._awaiting.pop(ask_id, None)

    def request(self, frame: bytes) -> asyncio.Future[Any]:
        """Send an ask of the edge's; return a future for its encoded reply frame.

        It follows everything queued before it, at the end of the loop turn: alone as a
        `request` call whose result is the reply, or with the other asks of the turn in
        one `asks` call.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.dead is not None:
            future.set_exception(_never_ran(self.dead))
            return future
        self._outbox.append((frame, future, True))
        if not self._pump_due:
            self._pump_due = True
            asyncio.get_running_loop().call_soon(self._pump_soon)
        return future

    def open_stream(self, frame: bytes, buffered: int) -> Any:
        """Send a streamed ask as its own streaming call; return Ray's generator of its frames.

        Like `request`, it follows everything queued before it. Ray holds at most
        `buffered` items (batches of frames) the reader has not taken, and pauses the
        peer's call beyond.

        Raises:
            DiedBeforeRunError: The peer is known to have died.
        """
        if self.dead is not None:
            raise _never_ran(self.dead)
        self._flush_all()
        call = self.handle.stream.options(_generator_backpressure_num_objects=buffered)
        return call.remote(pack_call(self._link_id, self._next_seq(), frame))

    def _request(self, frame: bytes, future: asyncio.Future[Any]) -> None:
        ref = self.handle.request.remote(pack_call(self._link_id, self._next_seq(), frame))
        self._requests += 1
        self._when_ended(ref, lambda result, error: self._complete_request(result, error, future))

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _pump_soon(self) -> None:
        self._pump_due = False
        self._pump()

    def _pump(self) -> None:
        outbox = self._outbox
        if len(outbox) == 1 and outbox[0][2] and self._requests == 0:
            # Even behind a batch call in flight: a lone ask need not wait for that call
            # to end, and the receiver's sequencing still takes it after the batch.
            frame, future, _is_ask = outbox.popleft()
            self._request(frame, future)
            return
        while outbox and self._inflight < self._max_inflight:
            self._ship(min(len(self._outbox), self._max_batch))

    def _flush_all(self) -> None:
        # A request must follow everything queued before it, even past the window.
        while self._outbox:
            self._ship(min(len(self._outbox), self._max_batch))

    def _ship(self, count: int) -> None:
        if self._edge:
            # The edge's asks and tells go apart, in their order: its asks' replies come
            # back on the calls of the asks, never on a batch call.
            outbox = self._outbox
            asking = outbox[0][2]
            count = next((i for i in range(1, count) if outbox[i][2] is not asking), count)
            if asking:
                self._ask_together([outbox.popleft() for _ in range(count)])
                return
        items = [self._outbox.popleft() for _ in range(count)]
        call = pack_call(self._link_id, self._next_seq(), [i[0] for i in items])
        # The sender's own handle goes once, on its first batch: a `request` call needs
        # none, its reply being the call's result.
        reply_to, self._reply_to = self._reply_to, None
        deliver = self.handle.deliver
        ref = deliver.remote(call) if reply_to is None else deliver.remote(call, reply_to)
        self._inflight += 1
        self._when_ended(ref, lambda result, error: self._complete_batch(result, error, items))

    def _ask_together(self, items: list[tuple[bytes, asyncio.Future[Any], bool]]) -> None:
        """Send the edge's asks: one alone as a `request` call, more as one `asks` call."""
        if len(items) == 1:
            self._request(items[0][0], items[0][1])
            return
        call = pack_call(self._link_id, self._next_seq(), [frame for frame, _, _ in items])
        answers = self.handle.asks.remote(call)
        self._requests += 1
        reader = asyncio.get_running_loop().create_task(
            self._read_answers(answers, [future for _, future, _ in items])
        )
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)

    async def _read_answers(self, answers: Any, futures: list[asyncio.Future[Any]]) -> None:
        """Route the replies an `asks` call yields to its asks' futures, by index."""
        error: MeshError | None = None
        try:
            async for ref in answers:
                self._route_answers(await ref, futures)
        except ProtocolError as garbage:
            error = garbage.with_context(agent=self.peer)
        except Exception as exc:  # Ray's errors: the peer died, the call failed
            error = translate(exc, agent=self.peer)
            if isinstance(error, PeerDeadError):
                self._die(error, [])
            error = _maybe_ran(error)
        finally:
            self._requests -= 1
        if error is None:
            error = DecodeError(f"{self.peer!r} ended an asks call with asks unanswered",
                                agent=self.peer, hint=PEER_HOST_HINT)  # fmt: skip
        for future in futures:
            if not future.done():
                future.set_exception(_copy(error))

    def _route_answers(self, item: Any, futures: list[asyncio.Future[Any]]) -> None:
        for index, frame in open_answers(item, max_batch=self._max_batch):
            if index >= len(futures):
                raise DecodeError(f"an answer to ask {index} of a call of {len(futures)}",
                                  hint=PEER_HOST_HINT)  # fmt: skip
            for future in futures if index == WHOLE_CALL else (futures[index],):
                if future.done():
                    self._on_late(frame)
                else:
                    future.set_result(frame)

    def _when_ended(self, ref: Any, then: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``then(result, error)`` on this loop once the Ray call `ref` has ended.

        A callback on Ray's own future, not a task awaiting the ref: awaiting wraps that
        future in an asyncio one, so the ending took a loop turn more, besides the
        task's creation and first step, on every call.
        """
        loop = asyncio.get_running_loop()

        def ended(call: concurrent.futures.Future[Any]) -> None:
            # On Ray's thread: hand over to the loop, which owns the link.
            with contextlib.suppress(RuntimeError):  # the loop has closed: the process ends
                loop.call_soon_threadsafe(self._settle, call, then)

        ref.future().add_done_callback(ended)

    def _settle(
        self,
        call: concurrent.futures.Future[Any],
        then: Callable[[Any, BaseException | None], None],
    ) -> None:
        if self._closed:
            return  # its futures were failed when the link closed
        error = call.exception()
        then(None if error is not None else call.result(), error)

    def _complete_batch(
        self,
        result: Any,
        exc: BaseException | None,
        items: list[tuple[bytes, asyncio.Future[Any], bool]],
    ) -> None:
        self._inflight -= 1
        if exc is not None:
            self._die(translate(exc, agent=self.peer), [i[1] for i in items])
            return
        try:
            refusals, carried = open_result(result, max_batch=self._max_batch)
        except ProtocolError as garbage:
            # A peer host that answers a call with garbage: what the call carried failed.
            for _frame, future, _is_ask in items:
                if not future.done():
                    future.set_exception(_copy(garbage.with_context(agent=self.peer)))
            self._pump()
            return
        if carried:
            self._on_carried(carried, self.peer, self.incarnation)
        refused: dict[int, dict[str, Any]] = dict(refusals) if refusals else {}
        whole = refused.get(WHOLE_CALL)  # the peer could not open the call
        for index, (_frame, future, is_ask) in enumerate(items):
            if future.done():
                continue
            error = refused.get(index, whole)
            if error is not None:
                future.set_exception(MeshError.from_wire(error))
            elif not is_ask:
                future.set_result(None)
        self._pump()

    def _complete_request(
        self, reply: Any, exc: BaseException | None, future: asyncio.Future[Any]
    ) -> None:
        self._requests -= 1
        if exc is not None:
            error = translate(exc, agent=self.peer)
            if isinstance(error, PeerDeadError):
                self._die(error, [])
            if not future.done():
                future.set_exception(_maybe_ran(error))
            return
        if future.done():
            self._on_late(reply)
        else:
            future.set_result(reply)

    def _watch(self) -> None:
        # One long call per link that ends when the peer stops or dies, so that asks it
        # accepted fail at once rather than at their deadline, and the next send looks
        # up the peer's successor instead of calling a dead actor.
        self._when_ended(self.handle.watch.remote(), self._peer_ended)

    def _peer_ended(self, _result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            self._die(translate(exc, agent=self.peer), [])
        else:
            self._die(PeerDeadError(f"agent {self.peer!r} stopped", agent=self.peer), [])

    def _die(self, error: MeshError, sent: list[asyncio.Future[Any]]) -> None:
        # `sent`: the futures of the call that failed. Frames still in the outbox never
        # left; asks the peer accepted (or whose call failed) may have been handled.
        if self.dead is None:
            self.dead = error
        unsent = [i[1] for i in self._outbox]
        self._outbox.clear()
        for future in unsent:
            if not future.done():
                future.set_exception(_never_ran(error))
        for future in sent + list(self._awaiting.values()):
            if not future.done():
                future.set_exception(_maybe_ran(error))

    def close(self) -> None:
        """Fail what still waits on this link and ignore its calls' ends (the sender is going)."""
        self._die(MeshError(f"the link to {self.peer!r} was closed by its sender"), [])
        self._closed = True
        for reader in self._readers:
            reader.cancel()


def _copy(error: MeshError) -> MeshError:
    # Each waiter gets its own instance: tracebacks attach to exception objects.
    return MeshError.from_wire(error.to_wire())


def _never_ran(error: MeshError) -> MeshError:
    """Return the error for a message that did not reach a peer known to have died."""
    if type(error) is not PeerDeadError:
        return _copy(error)
    return DiedBeforeRunError(
        f"{error.message}; the message was not delivered",
        agent=error.agent,
        trace_id=error.trace_id,
        hint="it had no effect: safe to send again once the agent is back",
    )


def _maybe_ran(error: MeshError) -> MeshError:
    """Return the error for a message that was under way when its peer died."""
    if type(error) is not PeerDeadError:
        return _copy(error)
    return OutcomeUnknownError(
        f"{error.message} after the message was sent; it may or may not have been handled",
        agent=error.agent,
        trace_id=error.trace_id,
        hint="send it again only if handling it twice is harmless",
    )
