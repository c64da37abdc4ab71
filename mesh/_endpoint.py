"""The sending half of every participant: envelopes, peer links, asks and tells.

An agent host and the edge client (the driver's `Mesh`) are both endpoints. They differ
only in how an ask's reply comes back: a host is an actor that peers can call, so the
reply arrives as a frame of its own and is routed to the waiting future; the edge is not
callable, so it sends each ask as one Ray call whose result is the reply.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar, overload

from mesh._link import Link
from mesh.config import MeshConfig
from mesh.errors import (
    DeadlineExceededError,
    HopLimitError,
    MeshError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh.registry import AgentInfo, RegistryClient
from protocols import Envelope, ErrorReply, Kind, Message, new_trace_id
from protocols.wire import NoReply

__all__ = ["Endpoint"]

M = TypeVar("M", bound=Message)


class Endpoint:
    """Sends messages on behalf of one named participant.

    Args:
        name: The participant's name; peers see it as the sender.
        incarnation: Unique per process lifetime of this participant.
        registry: Where peers are looked up.
        self_handle: This participant's own host handle, or None at the edge.
    """

    def __init__(
        self,
        *,
        name: str,
        incarnation: str,
        config: MeshConfig,
        registry: RegistryClient,
        self_handle: Any = None,
    ) -> None:
        self.name = name
        self.incarnation = incarnation
        self.config = config
        self.codec = config.codec()
        self.registry = registry
        self._self_handle = self_handle
        self._link_id = f"{name}#{incarnation}"
        self._links: dict[str, Link] = {}
        self._resolving: dict[str, asyncio.Future[Link]] = {}
        # Asks this host is waiting on, by message id; replies complete them.
        self.pending: dict[str, asyncio.Future[Envelope]] = {}
        self.sent = 0

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
        waiting = (*parent.chain, self.name) if kind is Kind.ASK else parent.chain
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
        )

    async def tell(self, peer: str, msg: Message, *, parent: Envelope | None = None,
                   trace_id: str | None = None) -> None:  # fmt: skip
        """Send `msg` to `peer` and return once the peer has accepted it into its mailbox."""
        env = self.envelope(Kind.TELL, peer, msg, parent=parent, trace_id=trace_id)
        frame = self.codec.encode(env)
        link = await self.link(peer, trace_id=env.trace_id)
        accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        link.send(frame, accepted)
        self.sent += 1
        try:
            await accepted
        except MeshError as exc:
            raise exc.with_context(trace_id=env.trace_id) from None

    @overload
    async def ask(self, peer: str, msg: Message, *, parent: Envelope | None = ...,
                  timeout: float | None = ..., trace_id: str | None = ...,
                  expect: None = ...) -> Message | None: ...  # fmt: skip
    @overload
    async def ask(self, peer: str, msg: Message, *, parent: Envelope | None = ...,
                  timeout: float | None = ..., trace_id: str | None = ...,
                  expect: type[M]) -> M: ...  # fmt: skip

    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
        expect: type[Message] | None = None,
    ) -> Message | None:
        """Send `msg` to `peer` and return its reply (None if the handler returned None)."""
        env = self.envelope(Kind.ASK, peer, msg, parent=parent, trace_id=trace_id, timeout=timeout)
        frame = self.codec.encode(env)
        assert env.deadline is not None  # every ask has one
        try:
            async with asyncio.timeout_at(_loop_time(env.deadline)):
                link = await self.link(peer, trace_id=env.trace_id)
                self.sent += 1
                if self.is_edge or link.idle:
                    # One Ray call whose result is the reply: the lowest latency when
                    # nothing is waiting to be coalesced with it.
                    reply = self.codec.decode(await link.request(frame))
                else:
                    waiter: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
                    self.pending[env.id] = waiter
                    try:
                        link.send(frame, waiter, ask_id=env.id)
                        reply = await waiter
                    finally:
                        self.pending.pop(env.id, None)
        except TimeoutError:
            raise DeadlineExceededError(
                f"no reply from {peer!r} to {env.type!r} by its deadline "
                f"({env.deadline - time.time():+.3f}s)",
                agent=peer,
                trace_id=env.trace_id,
                hint="raise the timeout, or make the handler faster",
            ) from None
        except MeshError as exc:
            if isinstance(exc, PeerDeadError):
                self.forget(peer)
            raise exc.with_context(agent=peer, trace_id=env.trace_id) from None
        return self.open_reply(reply, expect)

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

        Raises:
            PeerNotFoundError: No live agent is registered as `peer`.
        """
        link = self._links.get(peer)
        if link is not None and link.dead is None:
            return link
        resolving = self._resolving.get(peer)
        if resolving is None:
            resolving = asyncio.get_running_loop().create_future()
            self._resolving[peer] = resolving
            try:
                found = await self.registry.lookup(peer)
                if found is None:
                    raise PeerNotFoundError(
                        f"no agent named {peer!r}",
                        agent=peer,
                        trace_id=trace_id,
                        hint="check the name; `await mesh.agents()` lists the live agents",
                    )
                info, handle = found
                resolving.set_result(self._open(info, handle))
            except BaseException as exc:
                resolving.set_exception(exc)
                resolving.exception()  # mark retrieved: the first caller re-raises it
                raise
            finally:
                del self._resolving[peer]
        return await asyncio.shield(resolving)

    def learn(self, peer: str, incarnation: str, handle: Any) -> None:
        """Open a link to a peer that introduced itself, sparing a registry lookup."""
        current = self._links.get(peer)
        if current is None or current.dead is not None or current.incarnation != incarnation:
            self._open_link(peer, incarnation, handle)

    def forget(self, peer: str) -> None:
        """Drop the link to `peer` so that the next send looks it up again."""
        self._links.pop(peer, None)

    def _open(self, info: AgentInfo, handle: Any) -> Link:
        current = self._links.get(info.name)
        if current is not None and current.dead is None and current.incarnation == info.incarnation:
            return current
        return self._open_link(info.name, info.incarnation, handle)

    def _open_link(self, peer: str, incarnation: str, handle: Any) -> Link:
        # A link to an older incarnation is left to finish or fail on its own.
        link = Link(
            link_id=self._link_id,
            peer=peer,
            incarnation=incarnation,
            handle=handle,
            reply_to=self._self_handle,
            max_batch=self.config.max_batch,
            max_inflight=self.config.max_inflight,
        )
        self._links[peer] = link
        return link

    def close(self) -> None:
        """Fail everything still waiting on a link and cancel the links' calls."""
        for link in self._links.values():
            link.close()
        self._links.clear()


def _loop_time(deadline: float) -> float:
    # asyncio deadlines are on the loop's monotonic clock; envelope deadlines are epoch.
    return asyncio.get_running_loop().time() + (deadline - time.time())
