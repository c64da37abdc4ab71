"""The host: the async Ray actor one agent lives in.

Inbound calls (`deliver`, `request`) only decode headers and queue; replies are routed
to waiting asks at once, never behind a busy handler. Workers (as many as the agent's
concurrency) take messages from the bounded mailbox in order and run handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import time
import uuid
from typing import Any

import ray

from mesh._compat import settle_ray_calls_at_once
from mesh.agent import Agent, AgentInfo, Context
from mesh.config import MeshConfig, adopt_secrets
from mesh.datapath._acceptance import InboundGuard
from mesh.datapath._deadlines import DeadlineWheel
from mesh.datapath._directory import RegistryClient
from mesh.datapath._durable import Durability
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._failures import handler_failed, start_failed
from mesh.datapath._link import sender_of
from mesh.datapath._probes import Heartbeat, Probe, cross_chain_deadlock, same_chain_deadlock
from mesh.datapath._selfcheck import settle_ray_calls
from mesh.datapath._typeshare import TYPE_CATALOG_NAME, TypeShare
from mesh.errors import (
    DeadlineExceededError,
    DecodeError,
    DiedBeforeRunError,
    DuplicateMessageError,
    HandlerError,
    MailboxFullError,
    MeshError,
    NoHandlerError,
    OutcomeUnknownError,
    PeerDeadError,
    PeerNotFoundError,
)
from mesh.observability import (
    SPAN_STORE_NAME,
    AgentStats,
    HostMetrics,
    Recorder,
    configure_logging,
    get_logger,
    trace_scope,
)
from mesh.security import AgentAccess
from protocols import Envelope, ErrorReply, Kind, Message, ProtocolError, SignatureError
from protocols.message import register
from protocols.wire import NoReply

#: Sender links whose next sequence number a host remembers.
_LINKS_REMEMBERED = 4096

__all__ = ["AgentHost"]

#: The longest a batch of frames holds the event loop before it lets other calls in.
_MAX_HOLD_S = 0.0002


class AgentHost:
    """Runs one agent: mailbox, workers, inbound ordering, replies and registration."""

    def __init__(
        self,
        agent_cls: type[Agent],
        *,
        name: str,
        role: str | None,
        capabilities: tuple[str, ...],
        model: str | None,
        topics: tuple[str, ...] = (),
        concurrency: int | None,
        mailbox_size: int | None,
        kwargs: dict[str, Any],
        config: MeshConfig,
        access: AgentAccess | None = None,
    ) -> None:
        configure_logging(fmt=config.log_format, level=config.log_level)
        adopt_secrets(config)
        for message_cls in agent_cls.message_classes:
            register(message_cls)
        self._config = config
        self._agent_cls = agent_cls
        self._kwargs = kwargs
        self._concurrency = concurrency or agent_cls.concurrency
        self._mailbox: asyncio.Queue[Envelope] = asyncio.Queue(
            maxsize=mailbox_size or config.mailbox_size
        )
        self._info = AgentInfo(
            name=name,
            role=role,
            capabilities=capabilities,
            model=model,
            topics=tuple(dict.fromkeys((*agent_cls.topics, *topics))),
            node_id=ray.get_runtime_context().get_node_id(),
            incarnation=uuid.uuid4().hex[:16],
            pid=os.getpid(),
            started_at=time.time(),
        )
        self._registry = RegistryClient.existing(namespace=config.namespace)
        self._stats = AgentStats(name=name)
        self._recorder: Recorder | None = None
        if config.tracing:
            store = ray.get_actor(SPAN_STORE_NAME, namespace=config.namespace)
            self._recorder = Recorder(store, service=f"agent.{name}")
        self._endpoint = Endpoint(
            name=name,
            incarnation=self._info.incarnation,
            config=config,
            registry=self._registry,
            types=TypeShare.of_catalog(
                ray.get_actor(TYPE_CATALOG_NAME, namespace=config.namespace)
            ),
            self_handle=ray.get_runtime_context().current_actor,
        )
        self._codec = self._endpoint.codec
        self._metrics: HostMetrics | None = None
        if config.metrics:
            self._metrics = HostMetrics(name, stats=self._stats, sent=self._endpoint.sent_by_type,
                                        mailbox_depth=self._mailbox.qsize)  # fmt: skip
        self._guard = InboundGuard(name=name, config=config, access=access)
        self._log = get_logger(agent=name)
        self._agent: Agent | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []
        # Held apart from _background: it ticks until the stop ends, so that a host
        # draining its mailbox is not taken for a stuck one.
        self._ticking: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stopping = False
        self._halted = False  # crashed: workers take no more messages
        self._stop_task: asyncio.Task[None] | None = None
        self._exit: dict[str, Any] = {"normal": True, "reason": "stopped"}
        # Inbound ordering: next sequence number expected per sender link, and the
        # calls that arrived early, waiting for their turn.
        self._expected: dict[str, int] = {}
        self._early: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._inside: set[tuple[str, int]] = set()  # admitted calls still being taken in
        # Asks sent as `request` calls, by message id: their replies are the call results.
        self._call_waiters: dict[str, asyncio.Future[bytes]] = {}
        # Messages being handled (with the worker task running each) and waiting in the
        # mailbox, by id: what probes and cancellations look up.
        self._running: dict[str, tuple[Envelope, asyncio.Task[None]]] = {}
        self._queued: set[str] = set()
        self._cancel_queued: set[str] = set()
        self._cancel_running: set[str] = set()
        self._heartbeat = Heartbeat(config.tick_s)
        self._deadlines = DeadlineWheel()
        self._control: asyncio.Task[None] | None = None
        self._durability = Durability(
            agent_cls.State,
            path=config.state_path(name),
            window=config.dedup_window,
            every=agent_cls.snapshot_every or config.snapshot_every,
        )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Build the agent, run on_start, register, then take messages.

        Returns the registry entry, or ``{"error": <wire error>}`` if the agent cannot start.
        """
        self._stats.bind()  # the workers and on_start count their model calls on it
        # What the process holds by now (Ray, the imports, the agent's code) lives as
        # long as it does: kept out of the collector, a full collection no longer walks
        # it, which cut the p99 of asks under a flood of bad frames from ~55 to ~20 ms.
        gc.freeze()
        # So that a handler blocking the loop cannot also mute the control lane.
        settle_ray_calls(self._stats, self._log, metrics=self._metrics is not None)
        try:
            agent = self._agent_cls.__new__(self._agent_cls)
            agent.name = self._info.name
            agent.role = self._info.role
            agent.capabilities = self._info.capabilities
            agent.model = self._info.model
            agent.log = self._log
            agent._stop_soon = self._stop_soon
            agent.__init__(**self._kwargs)  # type: ignore[misc]
            if self._durability.restore(agent):
                self._log.info("state restored", snapshot=str(self._durability.path))
            await agent.on_start()
            settle_ray_calls_at_once(asyncio.get_running_loop())  # chains a factory on_start set
        except Exception as exc:
            self._log.exception("agent failed to start")
            return {
                "error": start_failed(exc, agent=self._info.name, cls=self._agent_cls).to_wire()
            }
        self._agent = agent
        try:
            await self._registry.register(self._info, self._endpoint._self_handle)
        except MeshError as exc:
            return {"error": exc.to_wire()}
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        self._ticking = asyncio.create_task(self._heartbeat.run())
        if self._recorder is not None:
            self._background.append(asyncio.create_task(self._recorder.run()))
        if self._metrics is not None:
            self._background.append(asyncio.create_task(self._metrics.run()))
        self._log.debug("agent started", incarnation=self._info.incarnation)
        return {"info": self._info.model_dump()}

    @ray.method(concurrency_group="ctl")
    async def start_control(self) -> None:
        """Start the lease renewals on the control lane, which a blocked loop cannot stop."""
        if self._control is None:
            self._control = asyncio.get_running_loop().create_task(self._renew_lease())

    @ray.method(concurrency_group="ctl")
    async def health(self) -> dict[str, Any]:
        """Answer from the control lane even while the main loop is blocked."""
        lag = self._heartbeat.lag_s()
        return {
            "incarnation": self._info.incarnation,
            "healthy": await self._loop_runs(lag),
            "loop_lag_s": lag,
            "mailbox_depth": self._mailbox.qsize(),
        }

    async def stop(self, *, normal: bool = True, reason: str = "stopped") -> None:
        """Stop taking messages and end the agent.

        A normal stop lets queued and running messages finish (within the grace
        period); an abnormal one (a crash) drops them at once, and their askers get
        `DiedBeforeRunError` (never started) or `OutcomeUnknownError` (cut short).
        on_stop runs either way.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._halted = self._halted or not normal
        self._exit = {"normal": normal, "reason": reason}
        grace = self._config.stop_grace_s
        await self._quietly(self._registry.unregister(self._info.name, self._info.incarnation))
        if self._control is not None:
            self._control.get_loop().call_soon_threadsafe(self._control.cancel)
        for task in self._background:
            task.cancel()
        if normal and self._workers:
            drained = asyncio.create_task(self._mailbox.join())
            await asyncio.wait([drained], timeout=grace)
            drained.cancel()
        for task in self._workers:
            if task is not asyncio.current_task():
                task.cancel()
        self._drop_queued(reason)
        if self._agent is not None:
            await self._quietly(asyncio.wait_for(self._agent.on_stop(), grace))
        self._endpoint.close()
        if self._recorder is not None:
            self._recorder.flush()
        if self._metrics is not None:
            self._metrics.flush()
        for message_id, waiter in list(self._call_waiters.items()):
            if not waiter.done():
                gone = self._gone_error(message_id, reason)
                waiter.set_result(self._error_frame_for_id(message_id, gone))
        self._call_waiters.clear()
        self._stopped.set()
        if self._ticking is not None:
            self._ticking.cancel()

    def _gone_error(self, message_id: str, reason: str) -> PeerDeadError:
        # Invariant: an id stays in _queued until a worker takes it from the mailbox.
        name = self._info.name
        if message_id in self._queued:
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

    def _drop_queued(self, why: str) -> None:
        # Tells left in the mailbox of a stopping agent are dead letters here; askers
        # get PeerDeadError and record it on their side.
        while not self._mailbox.empty():
            env = self._mailbox.get_nowait()
            self._mailbox.task_done()
            if env.kind is Kind.TELL:
                self.dead_letter("stopped", env, f"agent {self._info.name!r} stopped ({why})")

    def _stop_soon(self, *, normal: bool, reason: str) -> None:
        # Requested from inside a handler: the stop waits for that handler to end. After
        # a crash no further message is handled, by this worker or another.
        self._halted = self._halted or not normal
        if not self._stopping:
            # Held apart from _background, which stop() cancels.
            self._stop_task = asyncio.get_running_loop().create_task(
                self.stop(normal=normal, reason=reason)
            )

    async def _quietly(self, step: Any) -> None:
        try:
            await step
        except Exception:
            self._log.warning("step of shutdown failed", exc_info=True)

    async def watch(self) -> dict[str, Any]:
        """Return how the agent ended, once it has; peers and supervisors hold this call.

        If the actor dies instead, the call fails with Ray's ActorDiedError.
        """
        await self._stopped.wait()
        return self._exit

    async def ping(self) -> str:
        """Return the incarnation (a liveness check)."""
        return self._info.incarnation

    def stats(self) -> dict[str, Any]:
        """Return counters and the mailbox depth as plain data."""
        self._stats.mailbox_depth = self._mailbox.qsize()
        self._stats.sent = self._endpoint.sent
        self._stats.probes_sent = self._endpoint.probes_sent
        self._stats.dead_letters = self._endpoint.dead_letters.total
        # A late reply comes back on a link (`deliver`) or as the late result of a
        # `request` call the ask made; both paths, and only they, record a "late" letter.
        self._stats.late_replies = self._endpoint.dead_letters.by_reason.get("late", 0)
        return dataclasses.asdict(self._stats)

    def dead_letter(
        self,
        reason: str,
        header: Envelope | None,
        error: BaseException | str,
        *,
        frame_bytes: int | None = None,
    ) -> None:
        """Record a message this agent could not take or handle (see `DeadLetterBox`)."""
        self._endpoint.dead_letter(reason, header, error, frame_bytes=frame_bytes)

    def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Return this agent's kept dead letters as plain data, oldest first."""
        return [letter.model_dump() for letter in self._endpoint.dead_letters.recent(limit)]

    async def _loop_runs(self, lag: float) -> bool:
        # On the control lane: a lag over the limit is a blocked loop only if the loop
        # cannot run a callback now; a starved process lags without being stuck.
        return lag < self._config.stuck_after_s or not await self._heartbeat.blocked()

    async def _renew_lease(self) -> None:
        # Runs on the control lane: renewals carry the main loop's lag, so the registry
        # shows a host whose loop is stuck as unhealthy instead of letting it vanish.
        period = min(self._config.lease_s / 3, max(self._config.stuck_after_s / 2, 0.1))
        while True:
            await asyncio.sleep(period)
            lag = self._heartbeat.lag_s()
            healthy = await self._loop_runs(lag)
            try:
                if not await self._registry.renew(self._info.name, self._info.incarnation,
                                                  healthy=healthy, loop_lag_s=lag):  # fmt: skip
                    await self._registry.register(self._info, self._endpoint._self_handle)
                    self._log.info("registered again after the registry lost the entry")
            except MeshError as exc:
                self._log.warning("lease renewal failed", error=str(exc))

    # -- inbound ---------------------------------------------------------------------

    async def deliver(
        self, link_id: str, seq: int, frames: list[bytes], reply_to: Any = None
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Accept a batch of frames from one sender link, in its sequence order.

        Returns the refused frames as ``(index, wire error)``, or None if all were taken.
        """
        await self._admit(link_id, seq)
        try:
            if reply_to is not None:
                name, incarnation = sender_of(link_id)
                self._endpoint.learn(name, incarnation, reply_to)
            refusals = None
            refusing_s = 0.0
            held_since = time.perf_counter()
            for index, frame in enumerate(frames):
                started = time.perf_counter()
                error = await self._accept(frame, link_id)
                if error is not None:
                    refusals = refusals or []
                    refusals.append((index, error.to_wire()))
                    refusing_s += time.perf_counter() - started
                if time.perf_counter() - held_since > _MAX_HOLD_S:
                    # A large batch (a flood of bad frames costs the most) lets the
                    # other senders' calls and the workers in before it goes on.
                    await asyncio.sleep(0)
                    held_since = time.perf_counter()
            if refusing_s and self._config.refusal_penalty:
                # A tarpit: the sender's link waits for this call, so a sender of bad (or
                # refused) frames gets at most 1 / (1 + penalty) of this host's time.
                await asyncio.sleep(min(refusing_s * self._config.refusal_penalty, 1.0))
            return refusals
        finally:
            self._release(link_id, seq)

    async def request(self, link_id: str, seq: int, frame: bytes) -> bytes:
        """Accept one ask and return its encoded reply or error as the call's result."""
        await self._admit(link_id, seq)
        try:
            waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            error = await self._accept(frame, link_id, call_waiter=waiter)
        finally:
            self._release(link_id, seq)
        if error is not None:
            return self._error_frame_for(frame, error)
        return await waiter

    async def _admit(self, link_id: str, seq: int) -> None:
        expected = self._expected.get(link_id, 0)
        if seq <= expected:
            self._inside.add((link_id, seq))
            return
        early = asyncio.get_running_loop().create_future()
        self._early[(link_id, seq)] = early
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(early), self._config.gap_timeout_s)
                    break
                except TimeoutError:
                    # A call ahead that waits for mailbox room is not a gap: wait on.
                    if (link_id, self._expected.get(link_id, 0)) not in self._inside:
                        raise
        except TimeoutError:
            self._stats.gaps += 1
            self._log.warning("gap in a sender's sequence; later messages go ahead",
                              link=link_id, missing=list(range(expected, seq)))  # fmt: skip
        finally:
            del self._early[(link_id, seq)]
        self._inside.add((link_id, seq))

    def _release(self, link_id: str, seq: int) -> None:
        self._inside.discard((link_id, seq))
        following = max(self._expected.pop(link_id, 0), seq + 1)
        self._expected[link_id] = following  # the most recently used last
        if len(self._expected) > _LINKS_REMEMBERED:
            # Every link a sender ever opened has an entry: forget the longest unused. If
            # it sends again, its call waits `gap_timeout_s` and goes ahead, in order.
            del self._expected[next(iter(self._expected))]
        early = self._early.get((link_id, following))
        if early is not None and not early.done():
            early.set_result(None)

    async def _accept(  # noqa: PLR0911 (one return per way a frame is refused)
        self, frame: bytes, link_id: str, *, call_waiter: asyncio.Future[bytes] | None = None
    ) -> MeshError | None:
        self._stats.received += 1
        opened = self._open(frame, link_id)
        if isinstance(opened, MeshError):
            return opened
        env = opened
        if call_waiter is not None and env.kind is not Kind.ASK:
            # A `request` call ends with the reply; anything but an ask would hold it forever.
            self._stats.refused += 1
            error = DecodeError(f"a {env.kind} frame came as a request; only asks do",
                                agent=self._info.name, trace_id=env.trace_id)  # fmt: skip
            self.dead_letter("decode", env, error, frame_bytes=_size(frame))
            return error
        if env.kind is Kind.REPLY or env.kind is Kind.ERROR:
            waiter = self._endpoint.pending.get(env.correlation_id or "")
            if waiter is not None and not waiter.done():
                waiter.set_result(env)
            else:
                self.dead_letter("late", env, f"reply to {env.correlation_id} after its ask ended")
            return None
        if self._stopping or self._agent is None:
            return DiedBeforeRunError(f"agent {self._info.name!r} is not running",
                                      agent=self._info.name)  # fmt: skip
        if self._durability.duplicate(env):
            self._stats.duplicates += 1
            duplicate = DuplicateMessageError(
                f"{self._info.name!r} already took message {env.id}; not handled again",
                agent=self._info.name, trace_id=env.trace_id,
                hint="a resent message: its first send was handled, and its reply is not kept",
            )  # fmt: skip
            self.dead_letter("duplicate", env, duplicate)
            return duplicate if env.kind is Kind.ASK else None
        if (
            env.kind is Kind.ASK
            and self._concurrency == 1
            and self._config.watchdogs
            and any(running.trace_id == env.trace_id for running, _ in self._running.values())
        ):
            deadlock = same_chain_deadlock(self._info.name, env)
            if deadlock is not None:
                self._stats.deadlocks_broken += 1
                return deadlock
        if not await self._enqueue(env):
            self._stats.refused += 1
            full = MailboxFullError(
                f"mailbox of {self._info.name!r} is full ({self._mailbox.maxsize} messages)",
                agent=self._info.name,
                trace_id=env.trace_id,
                hint="slow down, retry later, or give the agent a larger mailbox_size",
            )
            self.dead_letter("mailbox_full", env, full)
            return full
        self._durability.taken(env)
        self._queued.add(env.id)
        if call_waiter is not None:
            self._call_waiters[env.id] = call_waiter
        return None

    def _open(self, frame: bytes, link_id: str) -> Envelope | MeshError:
        # Decode, then the security checks; what fails comes back as the sender's error.
        try:
            env = self._codec.decode(frame)
        except SignatureError as exc:
            return self._refuse("signature", None, exc, frame_bytes=_size(frame))
        except ProtocolError as exc:
            self._stats.refused += 1
            error = exc.with_context(agent=self._info.name)
            self.dead_letter("decode", None, error, frame_bytes=_size(frame))
            return error
        refusal = self._guard.check(env, link_id)
        if refusal is not None:
            return self._refuse(refusal[0], env, refusal[1], frame_bytes=_size(frame))
        return env

    def _refuse(
        self, reason: str, header: Envelope | None, error: MeshError, *, frame_bytes: int | None
    ) -> MeshError:
        # Every refusal of a frame by the security checks passes here: counted by reason
        # and dead-lettered (header only, redacted), never handled.
        self._stats.refused += 1
        self._stats.refusals[reason] = self._stats.refusals.get(reason, 0) + 1
        error = error.with_context(agent=self._info.name)
        self.dead_letter(reason, header, error, frame_bytes=frame_bytes)
        return error

    async def _enqueue(self, env: Envelope) -> bool:
        # Backpressure: on a full mailbox, refuse at once ("error") or hold the sender's
        # call, and so its link, until there is room or the message's deadline ("wait").
        try:
            self._mailbox.put_nowait(env)
        except asyncio.QueueFull:
            if self._config.mailbox_policy == "error":
                return False
            left = env.remaining()
            try:
                async with asyncio.timeout(self._config.ask_timeout_s if left is None else left):
                    await self._mailbox.put(env)
            except TimeoutError:
                return False
            self._stats.waited += 1
        return True

    def _error_frame_for_id(self, message_id: str, error: MeshError) -> bytes:
        env = Envelope(kind=Kind.ASK, type="raymesh.unknown/1", sender="edge",
                       recipient=self._info.name, payload=b"", id=message_id)  # fmt: skip
        return self._codec.encode(self._reply_envelope(env, error))

    def _error_frame_for(self, frame: bytes, error: MeshError) -> bytes:
        # A `request` call needs an answer even for a frame that could not be read.
        try:
            env = self._codec.decode(frame)
        except ProtocolError:
            env = Envelope(kind=Kind.ASK, type="raymesh.unknown/1", sender="edge",
                           recipient=self._info.name, payload=b"")  # fmt: skip
        return self._codec.encode(self._reply_envelope(env, error))

    # -- handling ------------------------------------------------------------------------

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while not self._halted:
            env = await self._mailbox.get()
            if self._halted:  # it crashed meanwhile: stop() drops what is queued
                # Left in _queued: stop() tells its asker that it never ran.
                self._mailbox.task_done()
                self._mailbox.put_nowait(env)
                return
            self._queued.discard(env.id)
            try:
                if env.id in self._cancel_queued:
                    self._cancel_queued.discard(env.id)
                    self._stats.cancelled += 1
                    why = f"{env.type!r} was dropped unhandled: its asker gave up"
                    self.dead_letter("expired" if env.expired() else "cancelled", env, why)
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
                self._answer_cancelled(env)
                self._mailbox.task_done()

    def _answer_cancelled(self, env: Envelope) -> None:
        # A `request` call whose ask was cancelled (or crashed the worker) would
        # otherwise never return: end it with an error its caller no longer awaits.
        waiter = self._call_waiters.pop(env.id, None)
        if waiter is not None and not waiter.done():
            error = DeadlineExceededError(
                f"{env.type!r} was cancelled by its asker", agent=self._info.name,
                trace_id=env.trace_id)  # fmt: skip
            waiter.set_result(self._codec.encode(self._reply_envelope(env, error)))

    # -- control: cancellation, probes, aborts ---------------------------------------------

    async def cancel(self, message_id: str) -> None:
        """Stop handling a message whose asker gave up, or drop it if it has not started."""
        running = self._running.get(message_id)
        if running is not None:
            self._cancel_running.add(message_id)
            running[1].cancel()
        elif message_id in self._queued:
            self._cancel_queued.add(message_id)

    async def probe(self, probes: list[Probe]) -> None:
        """Forward deadlock probes along the asks that block the probed asks."""
        self._stats.probes_received += len(probes)
        blockers = self._endpoint.blockers()
        onward: dict[str, list[Probe]] = {}
        for ask_id, path in probes:
            if ask_id in self._running:
                blocking = [ask_id]
            elif ask_id in self._queued and self._concurrency == 1 and self._running:
                # A queued message waits on the one running handler. With more workers
                # it waits for any of them to end: a path back through one is no cycle,
                # and following all of them multiplied probes by the concurrency (a hub
                # collapsed under it), so concurrent agents are left to deadlines.
                blocking = list(self._running)
            else:
                continue
            origin = path[0][1]
            for blocked_id, waiting in (b for parent in blocking for b in blockers.get(parent, [])):
                if blocked_id == origin:
                    victim, error = cross_chain_deadlock(path)
                    self._stats.deadlocks_broken += 1
                    self._log.warning("deadlock across conversations broken", cycle=error.cycle,
                                      victim=victim[0], trace_id=victim[3])  # fmt: skip
                    await self._quietly(self._endpoint.abort_remote(victim[0], victim[1], error))
                    break
                if all(entry[1] != blocked_id for entry in path):
                    entry = (self._info.name, blocked_id, waiting.started, waiting.trace_id)
                    onward.setdefault(waiting.peer, []).append((blocked_id, [*path, entry]))
        for peer, batch in onward.items():
            self._endpoint.send_probes(peer, batch)

    async def abort(self, ask_id: str, error: dict[str, Any]) -> None:
        """Fail one of this agent's outstanding asks (chosen to break a deadlock)."""
        self._endpoint.abort(ask_id, MeshError.from_wire(error))

    async def _handle(self, env: Envelope) -> None:
        is_ask = env.kind is Kind.ASK
        outcome: Message | MeshError | None
        spent: dict[str, float] = {}
        started = time.perf_counter()
        if env.expired():
            self._expired(env)
            if self._metrics is not None:
                self._metrics.handled(env.type, None, "DeadlineExceededError")
            return
        outcome, spent = await self._run_handler(env)
        ran = time.perf_counter() - started
        # A handler that raised may have left the state half changed: not snapshotted.
        await self._remember(env, snapshot=not isinstance(outcome, HandlerError))
        if self._metrics is not None:
            failed = type(outcome).__name__ if isinstance(outcome, MeshError) else None
            self._metrics.handled(env.type, ran, failed)
        if isinstance(outcome, MeshError):
            self._stats.failed += 1
            reason = _unhandled_reason(outcome, is_ask=is_ask)
            if reason is not None:
                self.dead_letter(reason, env, outcome)
        else:
            self._stats.handled += 1
        if is_ask:
            if isinstance(outcome, Message):
                await self._endpoint.types.share(outcome)
            await self._send_reply(env, self._reply_envelope(env, outcome, spent))
        if isinstance(outcome, HandlerError) and self._agent_cls.crash_on_error:
            # Let it crash: a fresh incarnation from the supervisor, not a bad state.
            self._stop_soon(normal=False, reason=f"crashed: {outcome.message}")

    async def _remember(self, env: Envelope, *, snapshot: bool) -> None:
        # Before the reply: an asker that has its reply knows the state is on disk
        # (when snapshots come after every message).
        assert self._agent is not None
        try:
            await self._durability.handled(env, self._agent, snapshot=snapshot)
        except OSError as exc:
            self._log.error("state snapshot not written", error=str(exc),
                            snapshot=str(self._durability.path))  # fmt: skip
        self._stats.snapshots = self._durability.snapshots

    def _expired(self, env: Envelope) -> None:
        # Not handled: nobody waits for the outcome any more. An asker on a link gets
        # DeadlineExceededError by its own deadline; a `request` call still needs an
        # answer to end, though its caller has gone.
        self._stats.expired += 1
        error = DeadlineExceededError(
            f"{env.type!r} expired before {self._info.name!r} could handle it",
            agent=self._info.name,
            trace_id=env.trace_id,
        )
        self.dead_letter("expired", env, error)
        waiter = self._call_waiters.pop(env.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(self._codec.encode(self._reply_envelope(env, error)))

    async def _run_handler(
        self, env: Envelope
    ) -> tuple[Message | MeshError | None, dict[str, float]]:
        ctx = Context(self._endpoint, env, self._log)
        if self._recorder is None:
            return await self._call_handler(env, ctx), ctx.spent
        info = self._info
        with self._recorder.span(env, agent=info.name, role=info.role, model=info.model) as span:
            outcome = await self._call_handler(env, ctx)
            self._recorder.outcome(span, outcome if isinstance(outcome, MeshError) else None)
        return outcome, ctx.spent

    async def _call_handler(self, env: Envelope, ctx: Context) -> Message | MeshError | None:
        assert self._agent is not None
        name = self._info.name
        route = self._agent.handlers.get(env.type)
        if route is None:
            return NoHandlerError(
                f"agent {name!r} has no handler for {env.type!r}",
                agent=name,
                trace_id=env.trace_id,
                hint=f"it handles: {', '.join(sorted(self._agent.handlers)) or 'nothing'}",
            )
        method_name = route.method
        try:
            msg = self._codec.decode_message(env, route.message)
        except ProtocolError as exc:
            return exc.with_context(agent=name, trace_id=env.trace_id)
        with trace_scope(agent=name, trace_id=env.trace_id, span_id=env.span_id):
            method = getattr(self._agent, method_name)
            worker = asyncio.current_task()
            assert worker is not None
            deadline = env.deadline if self._config.watchdogs else None
            slot = None if deadline is None else self._deadlines.watch(worker, deadline)
            cancelling = worker.cancelling()
            try:
                result = await method(msg, ctx)
            except asyncio.CancelledError:
                if slot is None or not self._deadlines.unwatch(worker, slot):
                    raise
                slot = None
                if worker.uncancel() > cancelling:
                    raise  # cancelled for another reason too: a stop, or the asker gave up
                return DeadlineExceededError(
                    f"handler {method_name} of {name!r} did not finish by the deadline",
                    agent=name,
                    trace_id=env.trace_id,
                )
            except Exception as exc:
                self._log.warning("handler raised", handler=method_name, exc_info=True)
                return handler_failed(exc, handler=method_name, agent=name, trace_id=env.trace_id)
            finally:
                if slot is not None and self._deadlines.unwatch(worker, slot):
                    worker.uncancel()  # the handler swallowed the deadline's cancellation
        if result is not None and not isinstance(result, Message):
            return HandlerError(
                f"handler {method_name} of {name!r} returned {type(result).__name__}, "
                "not a Message",
                remote_type="TypeError",
                agent=name,
                trace_id=env.trace_id,
            )
        return result

    def _reply_envelope(
        self,
        env: Envelope,
        outcome: Message | MeshError | None,
        spent: dict[str, float] | None = None,
    ) -> Envelope:
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
                    agent=self._info.name, trace_id=env.trace_id)))  # fmt: skip
        return Envelope(
            kind=kind,
            type=tag or "",
            sender=self._info.name,
            recipient=env.sender,
            payload=body,
            trace_id=env.trace_id,
            span_id=env.span_id,
            parent_span_id=env.parent_span_id,
            correlation_id=env.id,
            deadline=env.deadline,
            hops=env.hops,
            budget=spent or None,
        )

    async def _send_reply(self, env: Envelope, reply: Envelope) -> None:
        try:
            frame = self._codec.encode(reply)
        except MeshError as exc:  # e.g. a reply larger than max_frame_bytes
            exc.agent = self._info.name  # the replier failed, not the asker
            frame = self._codec.encode(self._reply_envelope(env, exc))
        waiter = self._call_waiters.pop(env.id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(frame)
            return
        try:
            link = await self._endpoint.link(env.sender, trace_id=env.trace_id)
        except MeshError as exc:
            self._reply_lost(env, exc)
            return
        # Not awaited: the worker goes on to the next message while the reply travels.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: self._reply_lost(env, f.exception()))
        link.send(frame, done)

    def _reply_lost(self, env: Envelope, error: BaseException | None) -> None:
        if error is None:
            return
        reason = (
            "no_peer" if isinstance(error, PeerNotFoundError)
            else "mailbox_full" if isinstance(error, MailboxFullError)
            else "peer_dead"
        )  # fmt: skip
        self.dead_letter(reason, env, f"the reply to this ask was not delivered: {error}")


def _size(frame: Any) -> int | None:
    try:
        return len(frame)
    except TypeError:
        return None


def _unhandled_reason(error: MeshError, *, is_ask: bool) -> str | None:
    # An ask's failure goes back to its asker; it is a dead letter only when the
    # message never reached a handler. A tell has nobody to tell, so every failure is.
    if isinstance(error, NoHandlerError):
        return "no_handler"
    if isinstance(error, ProtocolError):
        return "schema"
    if is_ask:
        return None
    if isinstance(error, DeadlineExceededError):
        return "expired"
    return "handler_crash"
