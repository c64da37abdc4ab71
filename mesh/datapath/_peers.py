"""The peer directory: the links an endpoint holds, and how it finds and loses peers.

A send needs a live link to the peer's current incarnation. The directory keeps one
per peer, looks peers up through the registry's client when it has none, serves the
callers that waited on a lookup in the order they came (that is what keeps per-pair
order across a lookup), and remembers incarnations it saw die for one lease, so that
it never sends into the void while the registry still lists a dead agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.datapath._directory import RegistryClient
from mesh.datapath._link import Link, link_id
from mesh.errors import DiedBeforeRunError, MeshError, PeerDeadError, PeerNotFoundError

__all__ = ["PeerDirectory"]


class PeerDirectory:
    """One endpoint's links to its peers, by peer name.

    Args:
        name: The owner's agent name.
        incarnation: The owner's incarnation; with `name`, the prefix of its link ids.
        registry: Where peers are looked up.
        self_handle: The owner's host handle, sent on links so peers can answer; None at
            the edge.
        on_late: Given a reply frame that came back on a link after its ask had ended.

    Attributes:
        take_carried: Takes the replies a batch call brought back as its result, with
            the peer and incarnation that sent them; set by the host (the edge sends
            no asks in batch calls, so none come back to it).
    """

    def __init__(
        self,
        *,
        name: str,
        incarnation: str,
        config: MeshConfig,
        registry: RegistryClient,
        self_handle: Any,
        on_late: Callable[[bytes], None],
    ) -> None:
        self._config = config
        self._registry = registry
        self._self_handle = self_handle
        self._on_late = on_late
        self.take_carried: Callable[[list[bytes], str, str], None] | None = None
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
        # Best-effort control calls (probes, cancellations) still under way.
        self._background: set[asyncio.Task[None]] = set()

    async def link(self, peer: str, *, trace_id: str | None = None) -> Link:
        """Return the live link to `peer`, looking it up in the registry if needed.

        Callers that had to wait get the link in the order they asked for it, before
        anyone who asks later: a send is made as soon as its caller has the link, so
        this is what keeps per-pair order across a lookup.

        Raises:
            PeerNotFoundError: No live agent is registered as `peer`.
            DiedBeforeRunError: The registered agent is one this directory saw die.
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

    def notify(self, peer: str, call: Callable[[Any], Any]) -> bool:
        """Make the control call `call(handle)` to `peer` if its link is live, unawaited.

        Returns False, and calls nothing, when there is no live link: a peer that died
        can be neither probed nor cancelled.
        """
        link = self._links.get(peer)
        if link is None or link.dead is not None:
            return False
        task = asyncio.get_running_loop().create_task(_settle(call(link.handle)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    def quiet(self, peer: str) -> bool:
        """Whether nothing sent to `peer` is on its way: no frame queued, no call out."""
        link = self._links.get(peer)
        return link is None or link.idle

    def learn(self, peer: str, incarnation: str, handle: Any) -> None:
        """Open a link to a peer that introduced itself, sparing a registry lookup."""
        current = self._links.get(peer)
        if current is None or current.dead is not None or current.incarnation != incarnation:
            self._open_link(peer, incarnation, handle)

    def forget(self, peer: str) -> None:
        """Drop the link to `peer` so that the next send looks it up again."""
        link = self._links.pop(peer, None)
        if link is not None and isinstance(link.dead, PeerDeadError):
            self._graves[peer] = (link.incarnation, time.monotonic() + self._config.lease_s)

    def close(self) -> None:
        """Cancel lookups and control calls, and close every link (failing its waiters)."""
        for task in [*self._background, *self._resolving.values()]:
            task.cancel()
        for link in self._links.values():
            link.close()
        self._links.clear()

    def _carried(self, frames: list[bytes], peer: str, incarnation: str) -> None:
        if self.take_carried is not None:
            self.take_carried(frames, peer, incarnation)
            return
        for frame in frames:  # nobody here to take them: recorded, not lost silently
            self._on_late(frame)

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
        found = await self._registry.lookup(peer, unless=grave)
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
        config = self._config
        link = Link(
            link_id=link_id(self._link_id, next(self._links_opened)),
            peer=peer,
            incarnation=incarnation,
            handle=handle,
            reply_to=self._self_handle,
            max_batch=config.max_batch,
            max_inflight=config.max_inflight,
            max_outbox=config.max_outbox,
            on_late=self._on_late,
            on_carried=self._carried,
        )
        self._links[peer] = link
        return link


class _Queue:
    """The callers waiting for one peer's link: a fair lock hands it out in arrival order."""

    __slots__ = ("turn", "waiting")

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.waiting = 0


async def _settle(ref: Any) -> None:
    # Control calls are best effort: a peer that died cannot be probed or cancelled.
    with contextlib.suppress(Exception):
        await ref
