"""What an agent remembers across restarts: its declared state and the message ids it handled.

Dedup and durable state are one mechanism. A host remembers, per sender, a bounded
window of recent message ids and drops a message whose id it has seen (a retried
send). For an agent that declares a ``State`` model, the ids of the messages it has
handled are written in the same snapshot file as the state, in one atomic replace, so
"the state reflects message X" and "X is known as handled" can never disagree: a
restarted incarnation that starts from the snapshot drops a resend of X, and takes
again (handles for the first time, as far as its state knows) any message handled
after the snapshot. Agents without a ``State`` dedup within one incarnation only.

A message is also held by id while it is in flight (taken, and not yet handled or
dropped), outside the bounded windows: with ``concurrency > 1`` a resend that comes
while its first delivery still runs must neither run beside it (the window may have
forgotten the id under many later messages) nor be answered "handled" before it is.
Its duplicate waits for the first delivery's outcome (`settled`); the future it waits
on is made only then, not for every message taken.

Snapshots are JSON, written in a worker thread (a private temp file, fsynced, then
``os.replace``; see `mesh.security.write_private`), and
coalesced: while one write runs, later requests collapse into the next write.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mesh.errors import ConfigError
from mesh.security import write_private
from protocols import Envelope, PerSender

__all__ = ["Durability", "IdWindow"]

#: Senders whose windows a host keeps; the least recently heard from is forgotten first.
_MAX_SENDERS = 1024
_FORMAT = 1


class IdWindow:
    """The last `size` message ids taken from each sender (bounded in senders too)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._by_sender: PerSender[OrderedDict[str, None]] = PerSender(
            OrderedDict, max_senders=_MAX_SENDERS
        )

    def has(self, env: Envelope) -> bool:
        """Return True if `env`'s id from its sender is in the window."""
        ids = self._by_sender.get(env.sender)
        return ids is not None and env.id in ids

    def add(self, sender: str, message_id: str) -> None:
        """Remember `message_id` from `sender`, forgetting the oldest beyond the bounds."""
        ids = self._by_sender.heard_from(sender)
        ids[message_id] = None
        if len(ids) > self._size:
            ids.popitem(last=False)

    def dump(self) -> dict[str, list[str]]:
        """Return the window as plain data (oldest first)."""
        return {sender: list(ids) for sender, ids in self._by_sender.items()}

    def load(self, data: dict[str, list[str]]) -> None:
        """Add the ids of a `dump`."""
        for sender, ids in data.items():
            for message_id in ids:
                self.add(sender, message_id)


class Durability:
    """Dedup for one host, and the snapshots of its agent's state when it declares one.

    Args:
        state_cls: The agent's ``State`` model, or None (no snapshots).
        path: The snapshot file.
        window: Ids remembered per sender.
        every: Handled messages between snapshots.
    """

    def __init__(
        self, state_cls: type[BaseModel] | None, *, path: Path, window: int, every: int
    ) -> None:
        self._state_cls = state_cls
        self.path = path
        self._every = every
        self._accepted = IdWindow(window)  # taken into the mailbox in this incarnation
        self._handled = IdWindow(window)  # handled, as the last snapshot (or memory) knows
        # Taken and not yet handled or dropped, by (sender, id): None, or the future a
        # duplicate waits on, resolved when the first delivery leaves.
        self._in_flight: dict[tuple[str, str], asyncio.Future[None] | None] = {}
        self._since = 0
        self._pending: tuple[int, dict[str, Any]] | None = None
        self._requested = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.snapshots = 0

    @property
    def durable(self) -> bool:
        """True when the agent declares a state that is snapshotted."""
        return self._state_cls is not None

    def restore(self, agent: Any) -> bool:
        """Give `agent` its last snapshot's state (or a fresh one); True if one was found.

        Raises:
            ConfigError: The snapshot cannot be read or no longer fits the State model.
        """
        if self._state_cls is None:
            return False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if getattr(agent, "state", None) is None:
                agent.state = self._state_cls()
            return False
        try:
            data = json.loads(raw)
            agent.state = self._state_cls.model_validate(data["state"])
            self._handled.load(data["handled"])
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise ConfigError(
                f"the state snapshot {self.path} cannot be restored: {exc}",
                hint="migrate or delete the file (deleting it starts the agent afresh)",
            ) from None
        return True

    def duplicate(self, env: Envelope) -> bool:
        """Return True if a message with `env`'s id was taken or handled before."""
        return (
            (env.sender, env.id) in self._in_flight
            or self._accepted.has(env)
            or self._handled.has(env)
        )

    def in_flight(self, env: Envelope) -> asyncio.Future[None] | None:
        """Return what resolves when `env`'s first delivery leaves, if it is in flight."""
        key = (env.sender, env.id)
        if key not in self._in_flight:
            return None
        first = self._in_flight[key]
        if first is None:
            first = self._in_flight[key] = asyncio.get_running_loop().create_future()
        return first

    def taken(self, env: Envelope) -> None:
        """Remember that `env` went into the mailbox (a refused one may be resent)."""
        self._accepted.add(env.sender, env.id)
        self._in_flight[(env.sender, env.id)] = None

    def settled(self, env: Envelope) -> None:
        """Release `env`'s id: its delivery was handled or dropped (its duplicates go on)."""
        first = self._in_flight.pop((env.sender, env.id), None)
        if first is not None and not first.done():
            first.set_result(None)

    def settle_all(self) -> None:
        """Release every id in flight: the host stops, and what it holds never leaves."""
        for first in self._in_flight.values():
            if first is not None and not first.done():
                first.set_result(None)
        self._in_flight.clear()

    def handled(self, env: Envelope, *, snapshot: bool = True) -> bool:
        """Record that `env` was handled; return True if a snapshot is due now (`save`).

        With `snapshot` False (the handler raised, the state may be half changed) the
        id is remembered in memory only, and the next snapshot is not brought forward.
        Not a coroutine: it runs for every message, and a snapshot is rarely due.
        """
        self._handled.add(env.sender, env.id)
        if self._state_cls is None or not snapshot:
            return False
        self._since += 1
        if self._since < self._every:
            return False
        self._since = 0
        return True

    async def save(self, agent: Any) -> None:
        """Snapshot `agent`'s state and the handled ids; wait until it is on disk.

        Raises:
            OSError: The snapshot could not be written.
        """
        state = agent.state.model_dump(mode="json")
        await self._save({"format": _FORMAT, "state": state, "handled": self._handled.dump()})

    async def _save(self, data: dict[str, Any]) -> None:
        self._requested += 1
        self._pending = (self._requested, data)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._requested, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        # Coalescing: each write takes the newest request; those before it are covered.
        while self._pending is not None:
            generation, data = self._pending
            self._pending = None
            error: OSError | None = None
            try:
                await asyncio.to_thread(_write_atomic, self.path, data)
                self.snapshots += 1
            except OSError as exc:
                error = exc
            waiting, self._waiters = self._waiters, []
            for wanted, done in waiting:
                if wanted > generation:
                    self._waiters.append((wanted, done))
                elif not done.done():
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    # A reader (the next incarnation) sees the old file or the new one, never a torn one,
    # even after a crash; only the agent's user can read it (its state may hold anything).
    write_private(path, json.dumps(data, separators=(",", ":")))
