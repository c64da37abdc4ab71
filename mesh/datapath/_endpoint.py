"""The sending half of every participant: envelopes, peer links, asks and tells.

An agent host and the edge client (the driver's `Mesh`) are both endpoints. They differ
only in how an ask's reply comes back: a host is an actor that peers can call, so the
reply arrives as a frame of its own and is routed to the waiting future; the edge is not
callable, so it sends each ask as one Ray call whose result is the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, overload

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.datapath._directory import RegistryClient
from mesh.datapath._link import Link, link_id
from mesh.datapath._probes import Probe
from mesh.datapath._typeshare import TypeShare
from mesh.errors import (
    DeadlineExceededError,
    DeadlockError,
    DiedBeforeRunError,
    HopLimitError,
    MeshError,
    OutboxFullError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh.observability import DeadLetter, DeadLetterBox, get_logger
from protocols import (
    Envelope,
    ErrorReply,
    Kind,
    Message,
    ProtocolError,
    UnknownMessageTypeError,
    new_trace_id,
)
from protocols.message import is_known
from protocols.wire import NoReply

__all__ = ["Endpoint", "Outstanding"]

M = TypeVar("M", bound=Message)


@dataclass(slots=True)
class Outstanding:
    """An ask an endpoint waits on: who it waits for, since when, and on behalf of what."""

    peer: str
    started: float
    trace_id: str
    parent: str | None
    future: asyncio.Future[Any] | None = None


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
        self._self_handle = self_handle
        self._link_id = f"{name}#{incarnation}"
        self._links_opened = itertools.count()
        self._links: dict[str, Link] = {}
        # The last incarnation of each peer seen dead, until when to believe it: the
        # registry lists a dead agent until its successor registers or its lease lapses,
        # and a send to it would be a send into the void. Only for a lease, as a peer
        # that was merely unreachable renews its lease and is tried again after it.
        self._graves: dict[str, tuple[str, float]] = {}
        self._resolving: dict[str, asyncio.Task[Link]] = {}
        # Callers waiting for a peer's link, served in the order they came.
        self._queues: dict[str, _Queue] = {}
        # Asks this host is waiting on, by message id; replies complete them.
        self.pending: dict[str, asyncio.Future[Envelope]] = {}
        # Every ask this endpoint is waiting on, by message id (for probes and aborts).
        self.outstanding: dict[str, Outstanding] = {}
        self._background: set[asyncio.Task[None]] = set()
        # The next probe round, scheduled while asks are outstanding.
        self._probe_round: asyncio.TimerHandle | None = None
        self.sent = 0
        # Sends tried again (same message id) after a dead or missing peer: at_least_once.
        self.retries = 0
        self.sent_by_type: dict[str, int] = {}
        self.probes_sent = 0
        self.dead_letters = DeadLetterBox(name, config.dead_letters_kept)
        self._logged: dict[str, float] = {}
        self._log = get_logger(agent=name)

    def dead_letter(
        self,
        reason: str,
        header: Envelope | None,
        error: BaseException | str,
        *,
        frame_bytes: int | None = None,
    ) -> DeadLetter:
        """Record a message that was not delivered or not handled, and log it.

        The one place every refusal goes through (the host's, the sender's, and any
        check another module adds), so that nothing is dropped without a record.
        """
        letter = self.dead_letters.add(reason, header, error, frame_bytes=frame_bytes)
        # One log line per reason a second at most: under overload or a flood of bad
        # frames, logging each one would cost more than refusing it (all are recorded).
        last = self._logged.get(reason, 0.0)
        if self.config.log_dead_letters and letter.at - last >= 1.0:
            self._logged[reason] = letter.at
            self._log.warning("dead letter", reason=reason, message_type=letter.type,
                              sender=letter.sender, recipient=letter.recipient,
                              trace_id=letter.trace_id, error=letter.error,
                              total=self.dead_letters.by_reason[reason])  # fmt: skip
        return letter

    def _undelivered(self, env: Envelope, error: MeshError) -> None:
        # The sender records what only it can see; refusals by a live recipient
        # (mailbox full, a bad frame) are recorded by the recipient.
        if isinstance(error, PeerNotFoundError):
            self.dead_letter("no_peer", env, error)
        elif isinstance(error, PeerDeadError):
            self.dead_letter("peer_dead", env, error)
        elif isinstance(error, OutboxFullError):
            self.dead_letter("mailbox_full", env, error)

    def _late(self, frame: bytes) -> None:
        try:
            reply = self.codec.decode(frame)
        except ProtocolError as exc:
            self.dead_letter("decode", None, exc, frame_bytes=len(frame))
            return
        self.dead_letter("late", reply, f"reply to {reply.correlation_id} after its ask ended")

    @property
    def is_edge(self) -> bool:
        """True for the driver-side client, which peers cannot call."""
        return self._self_handle is None

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
        payload = self.codec.encode_message(msg)
        deadline: float | None = None
        if kind is Kind.ASK:
            deadline = time.time() + (self.config.ask_timeout_s if timeout is None else timeout)
        if parent is None:
            return Envelope(
                kind=kind,
                type=msg.type_tag or "",
                sender=self.name,
                recipient=peer,
                payload=payload,
                trace_id=trace_id or new_trace_id(),
                deadline=deadline,
                budget=budget,
            )
        hops = parent.hops + 1
        if hops > self.config.max_hops:
            raise HopLimitError(
                f"sending {msg.type_tag!r} to {peer!r} would make a chain of {hops} hops",
                agent=self.name,
                trace_id=parent.trace_id,
                hint=f"a loop between agents? the limit is max_hops={self.config.max_hops}",
            )
        if parent.deadline is not None:
            # A handler's own asks never outlive the message it is handling.
            deadline = parent.deadline if deadline is None else min(deadline, parent.deadline)
        # Only askers wait; nobody waits on a tell, so it starts a fresh chain.
        waiting = (*parent.chain, self.name) if kind is Kind.ASK else ()
        return Envelope(
            kind=kind,
            type=msg.type_tag or "",
            sender=self.name,
            recipient=peer,
            payload=payload,
            trace_id=parent.trace_id,
            parent_span_id=parent.span_id,
            deadline=deadline,
            hops=hops,
            chain=waiting,
            budget=budget,
        )

    async def tell(self, peer: str, msg: Message, *, parent: Envelope | None = None,
                   trace_id: str | None = None, budget: dict[str, float] | None = None,
                   at_least_once: bool = False) -> None:  # fmt: skip
        """Send `msg` to `peer` and return once the peer has accepted it into its mailbox.

        With `at_least_once`, a peer that is dead or not (yet) registered is looked up
        again and the same frame (the same message id) sent again, until the message's
        deadline or, for a tell without one, ``ask_timeout_s``.
        """
        await self.types.share(msg)
        env = self.envelope(Kind.TELL, peer, msg, parent=parent, trace_id=trace_id, budget=budget)
        frame = self.codec.encode(env)
        retry = _Retry(env.deadline or time.time() + self.config.ask_timeout_s)
        while True:
            try:
                link = await self.link(peer, trace_id=env.trace_id)
                accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                link.send(frame, accepted)
                self.sent += 1
                self.sent_by_type[env.type] = self.sent_by_type.get(env.type, 0) + 1
                await accepted
                return
            except MeshError as exc:
                if isinstance(exc, PeerDeadError):
                    self.forget(peer)
                if not (at_least_once and await retry.again(exc)):
                    self._undelivered(env, exc)
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
        await self.types.share(msg)
        env = self.envelope(Kind.ASK, peer, msg, parent=parent, trace_id=trace_id,
                            timeout=timeout, budget=budget)  # fmt: skip
        frame = self.codec.encode(env)
        assert env.deadline is not None  # every ask has one
        waiting = Outstanding(peer, time.time(), env.trace_id, parent.id if parent else None)
        self.outstanding[env.id] = waiting
        if self._probe_round is None and self._probing:
            self._schedule_probes()
        retry = _Retry(env.deadline)
        try:
            async with asyncio.timeout_at(_loop_time(env.deadline)):
                while True:
                    try:
                        reply = await self._ask_once(peer, env, frame, waiting)
                        break
                    except (PeerDeadError, PeerNotFoundError) as exc:
                        if isinstance(exc, PeerDeadError):
                            self.forget(peer)
                        if not (at_least_once and await retry.again(exc)):
                            raise
                        self.retries += 1
        except TimeoutError:
            if retry.last is not None:  # it never reached a live peer
                self._undelivered(env, retry.last)
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
            self._undelivered(env, exc)
            if isinstance(exc, DeadlockError):
                self._cancel_downstream(peer, env.id)
            raise exc.with_context(agent=peer, trace_id=env.trace_id) from None
        finally:
            del self.outstanding[env.id]
        if on_spent is not None and reply.budget:
            on_spent(reply.budget)
        return await self._read_reply(reply, expect)

    async def _ask_once(
        self, peer: str, env: Envelope, frame: bytes, waiting: Outstanding
    ) -> Envelope:
        link = await self.link(peer, trace_id=env.trace_id)
        self.sent += 1
        self.sent_by_type[env.type] = self.sent_by_type.get(env.type, 0) + 1
        if self.is_edge or link.idle:
            # One Ray call whose result is the reply: the lowest latency when nothing
            # is waiting to be coalesced with it.
            waiting.future = link.request(frame)
            return self.codec.decode(await waiting.future)
        waiting.future = waiter = asyncio.get_running_loop().create_future()
        self.pending[env.id] = waiter
        try:
            link.send(frame, waiter, ask_id=env.id)
            reply: Envelope = await waiter
            return reply
        finally:
            self.pending.pop(env.id, None)

    # -- watchdog support: probes, aborts, downstream cancellation ------------------------

    @property
    def _probing(self) -> bool:
        # The edge cannot be asked, so it can never be part of a cycle.
        return not self.is_edge and self.config.watchdogs

    def _schedule_probes(self) -> None:
        self._probe_round = asyncio.get_running_loop().call_later(
            self.config.probe_delay_s, self._send_probe_round
        )

    def _send_probe_round(self) -> None:
        # Only asks that waited longer than the probe delay are probed: fast asks cost no
        # control message. One call per peer per round, however many asks wait on it:
        # under load many asks wait that long, and a call for each would add to the load
        # that made them slow. Rounds repeat while asks wait, as the wait graph changes.
        self._probe_round = None
        if not self.outstanding:
            return
        cutoff = time.time() - self.config.probe_delay_s
        by_peer: dict[str, list[Probe]] = {}
        for ask_id, waiting in self.outstanding.items():
            if waiting.started <= cutoff:
                entry = (self.name, ask_id, waiting.started, waiting.trace_id)
                by_peer.setdefault(waiting.peer, []).append((ask_id, [entry]))
        for peer, probes in by_peer.items():
            self.send_probes(peer, probes)
        self._schedule_probes()

    def send_probes(self, peer: str, probes: list[Probe]) -> None:
        """Send deadlock probes along wait edges to `peer`, all in one call."""
        link = self._links.get(peer)
        if link is not None and link.dead is None:
            self.probes_sent += len(probes)
            self._fire(link.handle.probe.remote(probes))

    def blockers(self) -> dict[str, list[tuple[str, Outstanding]]]:
        """Return the asks this endpoint waits on, grouped by the message they were sent for."""
        by_parent: dict[str, list[tuple[str, Outstanding]]] = {}
        for ask_id, waiting in self.outstanding.items():
            if waiting.parent is not None:
                by_parent.setdefault(waiting.parent, []).append((ask_id, waiting))
        return by_parent

    def abort(self, ask_id: str, error: MeshError) -> bool:
        """Fail an outstanding ask with `error`; False if it had already ended."""
        waiting = self.outstanding.get(ask_id)
        if waiting is None or waiting.future is None or waiting.future.done():
            return False
        waiting.future.set_exception(error)
        return True

    async def abort_remote(self, owner: str, ask_id: str, error: MeshError) -> None:
        """Fail the ask `ask_id` that agent `owner` is waiting on."""
        if owner == self.name:
            self.abort(ask_id, error)
            return
        link = await self.link(owner)
        await link.handle.abort.remote(ask_id, error.to_wire())

    def _cancel_downstream(self, peer: str, ask_id: str) -> None:
        # The asker gave up: stop the work it started, so no orphan keeps spending.
        link = self._links.get(peer)
        if link is not None and link.dead is None:
            self._fire(link.handle.cancel.remote(ask_id))

    def _fire(self, ref: Any) -> None:
        task = asyncio.get_running_loop().create_task(_settle(ref))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read_reply(self, reply: Envelope, expect: type[Message] | None) -> Message | None:
        # A reply of a class only another participant's script defines is looked up in
        # the type catalog first; a tag nobody published is a dead letter here.
        if not is_known(reply.type) and (expect is None or expect.type_tag != reply.type):
            await self.types.learn(reply.type)
        try:
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

    async def link(self, peer: str, *, trace_id: str | None = None) -> Link:
        """Return the live link to `peer`, looking it up in the registry if needed.

        Callers that had to wait get the link in the order they asked for it, before
        anyone who asks later: a send is made as soon as its caller has the link, so
        this is what keeps per-pair order across a lookup.

        Raises:
            PeerNotFoundError: No live agent is registered as `peer`.
            DiedBeforeRunError: The registered agent is one this endpoint saw die.
        """
        link = self._links.get(peer)
        if link is not None and link.dead is None and peer not in self._queues:
            return link  # the hot path: no await
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = _Queue()
        # The lookup this caller shares is the one under way when it came, if any, so
        # that all who waited on a failed lookup get its error rather than one each.
        resolving = self._resolving.get(peer) if link is None or link.dead else None
        queue.waiting += 1
        try:
            async with queue.turn:
                current = self._links.get(peer)
                if current is not None and current.dead is None:
                    return current
                if current is not None:
                    self.forget(peer)
                return await asyncio.shield(resolving or self._resolving_task(peer))
        except MeshError as exc:
            # Each caller gets its own instance, in its own trace.
            raise MeshError.from_wire({**exc.to_wire(), "trace_id": trace_id}) from None
        finally:
            queue.waiting -= 1
            if not queue.waiting and self._queues.get(peer) is queue:
                del self._queues[peer]

    def _resolving_task(self, peer: str) -> asyncio.Task[Link]:
        """Return the lookup of `peer` under way, starting one if there is none."""
        resolving = self._resolving.get(peer)
        if resolving is None:
            # A task of its own, shared by everyone who needs the link meanwhile: the
            # first asker's deadline (a cancellation) must not fail the others' lookup.
            resolving = asyncio.get_running_loop().create_task(self._resolve(peer))
            self._resolving[peer] = resolving
            resolving.add_done_callback(partial(self._resolved, peer))
        return resolving

    async def _resolve(self, peer: str) -> Link:
        grave = self._grave(peer)
        found = await self.registry.lookup(peer, unless=grave)
        if found is None:
            raise PeerNotFoundError(
                f"no agent named {peer!r}",
                agent=peer,
                hint="check the name; `await mesh.agents()` lists the live agents",
            )
        info, handle = found
        if info.incarnation == grave:
            raise DiedBeforeRunError(
                f"agent {peer!r} died and no successor has registered yet",
                agent=peer,
                hint="nothing was sent: safe to retry once the agent is back",
            )
        return self._open(info, handle)

    def _resolved(self, peer: str, task: asyncio.Task[Link]) -> None:
        if self._resolving.get(peer) is task:
            del self._resolving[peer]
        if not task.cancelled():
            task.exception()  # retrieved here: its waiters may all have given up

    def learn(self, peer: str, incarnation: str, handle: Any) -> None:
        """Open a link to a peer that introduced itself, sparing a registry lookup."""
        current = self._links.get(peer)
        if current is None or current.dead is not None or current.incarnation != incarnation:
            self._open_link(peer, incarnation, handle)

    def forget(self, peer: str) -> None:
        """Drop the link to `peer` so that the next send looks it up again."""
        link = self._links.pop(peer, None)
        if link is not None and isinstance(link.dead, PeerDeadError):
            self._graves[peer] = (link.incarnation, time.monotonic() + self.config.lease_s)

    def _grave(self, peer: str) -> str | None:
        """Return the incarnation of `peer` last seen dead, while it is believed so."""
        grave = self._graves.get(peer)
        if grave is None or grave[1] < time.monotonic():
            self._graves.pop(peer, None)
            return None
        return grave[0]

    def _open(self, info: AgentInfo, handle: Any) -> Link:
        current = self._links.get(info.name)
        if current is not None and current.dead is None and current.incarnation == info.incarnation:
            return current
        return self._open_link(info.name, info.incarnation, handle)

    def _open_link(self, peer: str, incarnation: str, handle: Any) -> Link:
        # A link to an older incarnation is left to finish or fail on its own.
        link = Link(
            link_id=link_id(self._link_id, next(self._links_opened)),
            peer=peer,
            incarnation=incarnation,
            handle=handle,
            reply_to=self._self_handle,
            max_batch=self.config.max_batch,
            max_inflight=self.config.max_inflight,
            max_outbox=self.config.max_outbox,
            on_late=self._late,
        )
        self._links[peer] = link
        return link

    def close(self) -> None:
        """Fail everything still waiting on a link and cancel the links' calls."""
        if self._probe_round is not None:
            self._probe_round.cancel()
        for task in [*self._background, *self._resolving.values()]:
            task.cancel()
        for link in self._links.values():
            link.close()
        self._links.clear()


class _Queue:
    """The callers waiting for one peer's link: a fair lock hands it out in arrival order."""

    __slots__ = ("turn", "waiting")

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.waiting = 0


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


async def _settle(ref: Any) -> None:
    # Control calls are best effort: a peer that died cannot be probed or cancelled.
    with contextlib.suppress(Exception):
        await ref
