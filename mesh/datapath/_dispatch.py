"""The dispatcher: a host's bounded mailbox and the workers that take messages from it.

The mailbox is bounded twice: in messages (``mailbox_size``) and in payload bytes
(``mailbox_bytes``), so that a few large messages cannot hold what many small ones
may. As many workers as the agent's concurrency take messages in mailbox order and hand
each to the handler runner, so a serial agent handles one message at a time in the
order they were taken in. The dispatcher also knows which message is queued and which
is running: what cancellations, deadlock checks and a stopping host look up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mesh.config import MeshConfig
from mesh.datapath._durable import Durability
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._probes import same_chain_deadlock
from mesh.datapath._replies import Carry, Replies
from mesh.errors import (
    DeadlineExceededError,
    DiedBeforeRunError,
    DuplicateMessageError,
    MailboxFullError,
    MeshError,
    OutcomeUnknownError,
    PeerDeadError,
)
from mesh.observability import AgentStats
from protocols import Envelope, Kind

if TYPE_CHECKING:
    from mesh.datapath._sink import StreamSink

__all__ = ["Dispatcher"]


class Dispatcher:
    """Takes messages into one agent's mailbox and runs them on its workers.

    Args:
        name: The agent's name.
        concurrency: How many workers, so how many handlers may run at once.
        mailbox_size: How many messages may wait.
        handle: Handles one message and answers it (`HandlerRunner.handle`).
        log: Where a worker's unexpected failure is logged.
    """

    def __init__(
        self,
        *,
        name: str,
        config: MeshConfig,
        concurrency: int,
        mailbox_size: int,
        endpoint: Endpoint,
        replies: Replies,
        durability: Durability,
        stats: AgentStats,
        handle: Callable[[Envelope], Awaitable[None]],
        log: Any,
    ) -> None:
        self._name = name
        self._config = config
        self._concurrency = concurrency
        self.mailbox: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=mailbox_size)
        self.queued_bytes = 0  # payload bytes in the mailbox
        self._max_bytes = config.mailbox_bytes
        self._bytes_freed = asyncio.Event()
        self._waiting_for_bytes = 0
        self._endpoint = endpoint
        self._replies = replies
        self._durability = durability
        self._stats = stats
        self._handle = handle
        self._log = log
        self._workers: list[asyncio.Task[None]] = []
        self.accepting = False  # set once the agent runs, cleared when it stops
        self.halted = False  # crashed: workers take no more messages
        # Messages being handled (with the worker task running each) and waiting in the
        # mailbox, by id: what probes and cancellations look up.
        self._running: dict[str, tuple[Envelope, asyncio.Task[None]]] = {}
        self.queued: set[str] = set()
        self._cancel_queued: set[str] = set()
        self._cancel_running: set[str] = set()
        self._held: set[asyncio.Task[None]] = set()  # resends answered when the first settles

    def start(self) -> None:
        """Start the workers."""
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def admit(
        self,
        env: Envelope,
        call_waiter: asyncio.Future[bytes] | None = None,
        sink: StreamSink | None = None,
        carry: Carry | None = None,
    ) -> MeshError | None:
        """Put tell or ask `env` in the mailbox; return the error for its sender if refused.

        `call_waiter` is the `request` or `stream` call that `env` came in, which its
        reply ends; `sink` takes a streamed ask's chunks; `carry` is the batch call's,
        which may take the reply back.
        """
        if not self.accepting:
            return DiedBeforeRunError(f"agent {self._name!r} is not running", agent=self._name)
        if self._durability.duplicate(env):
            return self._duplicate(env, call_waiter)
        if (
            env.kind is Kind.ASK
            and self._concurrency == 1
            and self._config.watchdogs
            and any(running.trace_id == env.trace_id for running, _ in self._running.values())
        ):
            deadlock = same_chain_deadlock(self._name, env)
            if deadlock is not None:
                self._stats.deadlocks_broken += 1
                return deadlock
        size = len(env.payload)
        if self.queued_bytes + size > self._max_bytes and not await self._wait_for_bytes(env):
            return self._full(env, by_bytes=True)
        try:
            self.mailbox.put_nowait(env)
        except asyncio.QueueFull:
            if not await self._wait_for_room(env):
                return self._full(env, by_bytes=False)
        self.queued_bytes += size
        self._durability.taken(env)
        self.queued.add(env.id)
        if call_waiter is not None:
            self._replies.call_waiters[env.id] = call_waiter
        elif carry is not None and env.kind is Kind.ASK:
            self._replies.carry(env, carry)
        if sink is not None:
            sink.env = env
            self._replies.sinks[env.id] = sink
        return None

    def _duplicate(
        self, env: Envelope, call_waiter: asyncio.Future[bytes] | None
    ) -> MeshError | None:
        # A resend: dropped. An ask's resend whose first delivery is still in flight is
        # answered once that delivery has left, so that "already taken" never overtakes
        # its own outcome (an asker counts it as handled). Not awaited: it would hold
        # the link.
        self._stats.duplicates += 1
        duplicate = DuplicateMessageError(
            f"{self._name!r} already took message {env.id}; not handled again",
            agent=self._name, trace_id=env.trace_id,
            hint="a resent message: its first send was handled, and its reply is not kept",
        )  # fmt: skip
        self._endpoint.dead_letter("duplicate", env, duplicate)
        if env.kind is not Kind.ASK:
            return None
        first = self._durability.in_flight(env)
        if first is None:
            return duplicate

        async def answer() -> None:
            await first
            reply = self._replies.envelope(env, duplicate)
            if call_waiter is None:
                await self._replies.send(env, reply)
            elif not call_waiter.done():
                call_waiter.set_result(self._endpoint.codec.encode(reply))

        task = asyncio.create_task(answer())
        self._held.add(task)
        task.add_done_callback(self._held.discard)
        return None

    def _full(self, env: Envelope, *, by_bytes: bool) -> MailboxFullError:
        self._stats.refused += 1
        if by_bytes:
            what = (f"{self.queued_bytes} payload bytes queued, and this message's "
                    f"{len(env.payload)} would pass mailbox_bytes={self._max_bytes}")  # fmt: skip
            setting = "mailbox_bytes"
        else:
            what, setting = f"{self.mailbox.maxsize} messages", "mailbox_size"
        full = MailboxFullError(
            f"mailbox of {self._name!r} is full ({what})",
            agent=self._name,
            trace_id=env.trace_id,
            hint=f"slow down, retry later, or give the agent a larger {setting}",
        )
        self._endpoint.dead_letter("mailbox_full", env, full)
        return full

    async def _wait_for_room(self, env: Envelope) -> bool:
        # Backpressure: on a full mailbox, refuse at once ("error") or hold the sender's
        # call, and so its link, until there is room or the message's deadline ("wait").
        if self._config.mailbox_policy == "error":
            return False
        left = env.remaining()
        try:
            async with asyncio.timeout(self._config.ask_timeout_s if left is None else left):
                await self.mailbox.put(env)
        except TimeoutError:
            return False
        self._stats.waited += 1
        return True

    async def _wait_for_bytes(self, env: Envelope) -> bool:
        # As `_wait_for_room`, for room in bytes: woken each time a worker takes one.
        if self._config.mailbox_policy == "error" or len(env.payload) > self._max_bytes:
            return False
        left = env.remaining()
        self._waiting_for_bytes += 1
        try:
            async with asyncio.timeout(self._config.ask_timeout_s if left is None else left):
                while self.queued_bytes + len(env.payload) > self._max_bytes:
                    self._bytes_freed.clear()
                    await self._bytes_freed.wait()
        except TimeoutError:
            return False
        finally:
            self._waiting_for_bytes -= 1
        return True

    def _took(self, env: Envelope) -> None:
        # A message left the mailbox: its bytes are free again.
        self.queued_bytes -= len(env.payload)
        if self._waiting_for_bytes:
            self._bytes_freed.set()

    def cancel(self, message_id: str) -> None:
        """Stop handling a message whose asker gave up, or drop it if it has not started."""
        running = self._running.get(message_id)
        if running is not None:
            self._cancel_running.add(message_id)
            running[1].cancel()
        elif message_id in self.queued:
            self._cancel_queued.add(message_id)

    def blocking(self, message_id: str) -> list[str]:
        """Return the running messages that message `message_id` waits on, for a probe."""
        if message_id in self._running:
            return [message_id]
        if message_id in self.queued and self._concurrency == 1 and self._running:
            # A queued message waits on the one running handler. With more workers it
            # waits for any of them to end: a path back through one is no cycle, and
            # following all of them multiplied probes by the concurrency (a hub
            # collapsed under it), so concurrent agents are left to deadlines.
            return list(self._running)
        return []

    def stop_taking(self, *, crashed: bool) -> None:
        """Refuse new messages; after a crash, let the workers take none either."""
        self.accepting = False
        self.halted = self.halted or crashed

    async def wind_down(self, *, normal: bool, grace_s: float, reason: str) -> None:
        """Stop the workers: after the mailbox drained (within `grace_s`) if `normal`.

        Tells left in the mailbox are dead letters; asks left are answered by
        `answer_waiting`, once the agent has stopped.
        """
        if normal and self._workers:
            drained = asyncio.create_task(self.mailbox.join())
            await asyncio.wait([drained], timeout=grace_s)
            drained.cancel()
        for task in self._workers:
            if task is not asyncio.current_task():
                task.cancel()
        while not self.mailbox.empty():
            env = self.mailbox.get_nowait()
            self.mailbox.task_done()
            self._took(env)
            if env.kind is Kind.TELL:
                why = f"agent {self._name!r} stopped ({reason})"
                self._endpoint.dead_letter("stopped", env, why)

    def answer_waiting(self, reason: str) -> None:
        """End every `request` call still open with why its ask will get no reply."""
        for message_id, waiter in list(self._replies.call_waiters.items()):
            if not waiter.done():
                gone = self._gone_error(message_id, reason)
                waiter.set_result(self._replies.error_frame_for_id(message_id, gone))
        self._replies.call_waiters.clear()
        self._replies.sinks.clear()
        self._durability.settle_all()  # the resends held behind them are answered too

    def _gone_error(self, message_id: str, reason: str) -> PeerDeadError:
        # Invariant: an id stays in `queued` until a worker takes it from the mailbox.
        name = self._name
        if message_id in self.queued:
            return DiedBeforeRunError(
                f"agent {name!r} stopped before handling it ({reason})",
                agent=name,
                hint="it had no effect: safe to send again",
            )
        return OutcomeUnknownError(
            f"agent {name!r} stopped while handling it ({reason})",
            agent=name,
            hint="it may have been handled in part",
        )

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while not self.halted:
            env = await self.mailbox.get()
            if self.halted:  # it crashed meanwhile: wind_down drops what is queued
                # Left in `queued`: answer_waiting tells its asker that it never ran.
                self.mailbox.task_done()
                self.mailbox.put_nowait(env)
                return
            self.queued.discard(env.id)
            self._took(env)
            try:
                if env.id in self._cancel_queued:
                    self._cancel_queued.discard(env.id)
                    self._stats.cancelled += 1
                    why = f"{env.type!r} was dropped unhandled: its asker gave up"
                    reason = "expired" if env.expired() else "cancelled"
                    self._endpoint.dead_letter(reason, env, why)
                    continue
                self._running[env.id] = (env, worker)
                await self._handle(env)
            except asyncio.CancelledError:
                # Invariant: a message id is in _cancel_running only while its handler
                # runs in this worker, so this cancel was for it and not for the worker.
                if env.id not in self._cancel_running:
                    raise
                worker.uncancel()
                self._stats.cancelled += 1
            except Exception:
                self._log.exception("message handling failed", message_type=env.type)
            finally:
                self._running.pop(env.id, None)
                self._cancel_running.discard(env.id)
                self._replies.sinks.pop(env.id, None)
                if env.id in self._replies.call_waiters:
                    # A `request` call whose ask was cancelled (or crashed the worker)
                    # would otherwise never return: end it with an error its caller no
                    # longer awaits.
                    cancelled = DeadlineExceededError(
                        f"{env.type!r} was cancelled by its asker", agent=self._name,
                        trace_id=env.trace_id)  # fmt: skip
                    self._replies.answer_call(env, cancelled)
                self._durability.settled(env)
                self.mailbox.task_done()
