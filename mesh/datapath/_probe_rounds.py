"""The asks an endpoint waits on, and the deadlock probes sent for the slow ones.

Only asks that waited longer than the probe delay are probed: fast asks cost no
control message. Only asks a handler made (they have a parent message) are probed: a
cycle closes only through a message being handled, so an ask from outside a handler
(the edge's, or a background task's) can wait in none. One call per peer per round,
however many asks wait on it: under load many asks wait that long, and a call for each
would add to the load that made them slow. An ask is probed again while it waits, at
twice its age each time (at 1, 2, 4... times the delay), as the wait graph changes: a
cycle is found by the probe of the ask that closed it, one delay after it closed, and
the repeats are for probes lost with a peer that restarted. A probe that reaches a
host is forwarded along the asks that block the probed one, or has found a cycle when
it comes back to the ask it started from; the arithmetic of a cycle is in `_probes`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.config import MeshConfig
from mesh.datapath._peers import PeerDirectory
from mesh.datapath._probes import PathEntry, Probe, cross_chain_deadlock
from mesh.errors import DeadlockError, MeshError

__all__ = ["Outstanding", "ProbeRounds"]


@dataclass(slots=True)
class Outstanding:
    """An ask an endpoint waits on: who it waits for, since when, and on behalf of what."""

    peer: str
    started: float
    trace_id: str
    parent: str | None
    future: asyncio.Future[Any] | None = None
    #: When (epoch seconds) this ask is next probed, if it still waits; set when kept.
    due: float = 0.0


class ProbeRounds:
    """Keeps one endpoint's outstanding asks, probes those that wait too long, fails victims.

    Args:
        name: The owner's agent name, the first entry of the probes it starts.
        peers: Where probes are sent from, on the links of live peers only.
        enabled: False at the edge (it cannot be asked, so it is never in a cycle) and
            without watchdogs: asks are still kept, for aborts, but never probed.
    """

    def __init__(
        self, *, name: str, config: MeshConfig, peers: PeerDirectory, enabled: bool
    ) -> None:
        self._name = name
        self._delay_s = config.probe_delay_s
        self._peers = peers
        self._enabled = enabled
        # Every ask the endpoint is waiting on, by message id (for probes and aborts).
        self.outstanding: dict[str, Outstanding] = {}
        # The next round, scheduled while asks that can be probed are outstanding, and
        # when it is due (epoch seconds).
        self._round: asyncio.TimerHandle | None = None
        self._round_at = 0.0
        self.sent = 0

    def waits(self, ask_id: str, waiting: Outstanding) -> None:
        """Record that the endpoint waits on `ask_id`; the caller removes it when it ends."""
        self.outstanding[ask_id] = waiting
        if self._enabled and waiting.parent is not None:
            waiting.due = waiting.started + self._delay_s
            if self._round is None or waiting.due < self._round_at:
                self._schedule(waiting.due)

    def send(self, peer: str, probes: list[Probe]) -> None:
        """Send deadlock probes along wait edges to `peer`, all in one call."""
        if self._peers.notify(peer, lambda handle: handle.probe.remote(probes)):
            self.sent += len(probes)

    def forward(
        self, probes: list[Probe], blocking: Callable[[str], list[str]]
    ) -> list[tuple[PathEntry, DeadlockError]]:
        """Forward probes that reached this host; return the cycles they closed.

        `blocking` gives the messages (running here) that a probed ask waits on; the
        probe follows the asks this endpoint sent for them. Each cycle comes with the
        ask to fail to break it and the error to fail it with.
        """
        blockers = self._blockers()
        onward: dict[str, list[Probe]] = {}
        cycles: list[tuple[PathEntry, DeadlockError]] = []
        for ask_id, path in probes:
            origin = path[0][1]
            for blocked_id, waiting in (
                b for parent in blocking(ask_id) for b in blockers.get(parent, [])
            ):
                if blocked_id == origin:
                    cycles.append(cross_chain_deadlock(path))
                    break
                if all(entry[1] != blocked_id for entry in path):
                    entry = (self._name, blocked_id, waiting.started, waiting.trace_id)
                    onward.setdefault(waiting.peer, []).append((blocked_id, [*path, entry]))
        for peer, batch in onward.items():
            self.send(peer, batch)
        return cycles

    def _blockers(self) -> dict[str, list[tuple[str, Outstanding]]]:
        # The asks the endpoint waits on, grouped by the message they were sent for.
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
        """Fail the ask `ask_id` that agent `owner` is waiting on: the victim of a cycle."""
        if owner == self._name:
            self.abort(ask_id, error)
            return
        link = await self._peers.link(owner)
        await link.handle.abort.remote(ask_id, error.to_wire())

    def close(self) -> None:
        """Send no more rounds."""
        if self._round is not None:
            self._round.cancel()

    def _schedule(self, at: float) -> None:
        # One round scheduled at a time: the earliest that any waiting ask is due.
        if self._round is not None:
            self._round.cancel()
        self._round_at = at
        self._round = asyncio.get_running_loop().call_later(
            max(0.0, at - time.time()), self._send_round
        )

    def _send_round(self) -> None:
        self._round = None
        # A timer may fire a little early by the wall clock the asks are stamped with.
        now = time.time() + _EARLY_S
        by_peer: dict[str, list[Probe]] = {}
        following: float | None = None
        for ask_id, waiting in self.outstanding.items():
            if waiting.parent is None:
                continue
            if waiting.due <= now:
                entry = (self._name, ask_id, waiting.started, waiting.trace_id)
                by_peer.setdefault(waiting.peer, []).append((ask_id, [entry]))
                waiting.due = now + max(now - waiting.started, self._delay_s)
            if following is None or waiting.due < following:
                following = waiting.due
        for peer, probes in by_peer.items():
            self.send(peer, probes)
        if following is not None:
            self._schedule(following)


#: How early a round may fire, by the wall clock, and still probe the asks due at it.
_EARLY_S = 0.002
