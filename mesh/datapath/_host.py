"""The host: the async Ray actor one agent lives in, a thin facade over plain parts.

Inbound calls (`deliver`, `request`, `stream`, `asks`) pass the sequencing gate
(`_sequencing`), then frame acceptance (`_acceptance`), which routes replies to waiting
asks at once, never behind a busy handler, and queues tells and asks with the dispatcher
(`_dispatch`); its workers run the handlers (`_handling`) and answer (`_replies`). What
is left here is what needs Ray: building the parts, the agent's lifecycle and
registration, and the control lane.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import ray

from mesh._compat import settle_ray_calls_at_once
from mesh.agent import Agent, AgentInfo
from mesh.config import MeshConfig, adopt_secrets
from mesh.datapath._acceptance import FrameAcceptance, InboundGuard
from mesh.datapath._ask_batches import AskBatches
from mesh.datapath._directory import RegistryClient
from mesh.datapath._dispatch import Dispatcher
from mesh.datapath._durable import Durability
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._failures import start_failed
from mesh.datapath._handling import HandlerRunner
from mesh.datapath._lease import Lease
from mesh.datapath._link import sender_of
from mesh.datapath._probes import Heartbeat, Probe
from mesh.datapath._replies import CARRY_TURNS, Carry, Replies
from mesh.datapath._selfcheck import settle_ray_calls
from mesh.datapath._sequencing import SequencingGate
from mesh.datapath._streams import StreamServer
from mesh.datapath._typeshare import TYPE_CATALOG_NAME, TypeShare
from mesh.errors import MeshError
from mesh.observability import (
    SPAN_STORE_NAME,
    AgentStats,
    HostMetrics,
    Recorder,
    configure_logging,
    get_logger,
)
from mesh.security import AgentAccess
from protocols.calls import WHOLE_CALL, pack_answers, pack_result
from protocols.message import register

__all__ = ["AgentHost"]


class AgentHost:
    """Runs one agent: its parts, its lifecycle and registration, and the control lane."""

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
        self._handle = ray.get_runtime_context().current_actor
        self._registry = RegistryClient.existing(namespace=config.namespace)
        self._stats = AgentStats(name=name)
        self._log = get_logger(agent=name)
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
            self_handle=self._handle,
        )
        self._metrics: HostMetrics | None = None
        if config.metrics:
            self._metrics = HostMetrics(name, stats=self._stats, sent=self._endpoint.sent_by_type,
                                        mailbox_depth=self._mailbox_depth)  # fmt: skip
        self._durability = Durability(
            agent_cls.State,
            path=config.state_path(name),
            window=config.dedup_window,
            every=agent_cls.snapshot_every or config.snapshot_every,
        )
        replies = Replies(name=name, endpoint=self._endpoint)
        self._runner = HandlerRunner(
            info=self._info, config=config, endpoint=self._endpoint, replies=replies,
            durability=self._durability, stats=self._stats, log=self._log,
            crash_on_error=agent_cls.crash_on_error, stop_soon=self._stop_soon,
            recorder=self._recorder, metrics=self._metrics,
        )  # fmt: skip
        self._dispatch = Dispatcher(
            name=name, config=config, concurrency=concurrency or agent_cls.concurrency,
            mailbox_size=mailbox_size or config.mailbox_size, endpoint=self._endpoint,
            replies=replies, durability=self._durability, stats=self._stats,
            handle=self._runner.handle, log=self._log,
        )  # fmt: skip
        self._replies = replies
        self._gate = SequencingGate(gap_timeout_s=config.gap_timeout_s, stats=self._stats,
                                    log=self._log)  # fmt: skip
        self._acceptance = FrameAcceptance(
            name=name, config=config, guard=InboundGuard(name=name, config=config, access=access),
            endpoint=self._endpoint, dispatcher=self._dispatch, stats=self._stats,
        )  # fmt: skip
        self._endpoint.peers.take_carried = self._acceptance.take_carried
        self._streams = StreamServer(buffer=config.stream_buffer_chunks, gate=self._gate,
                                     acceptance=self._acceptance, dispatcher=self._dispatch,
                                     replies=replies)  # fmt: skip
        self._ask_batches = AskBatches(gate=self._gate, acceptance=self._acceptance,
                                       replies=replies)  # fmt: skip
        self._background: list[asyncio.Task[None]] = []
        # Held apart from _background: it ticks until the stop ends, so that a host
        # draining its mailbox is not taken for a stuck one.
        self._ticking: asyncio.Task[None] | None = None
        self._heartbeat = Heartbeat(config.tick_s)
        self._lease = Lease(info=self._info, handle=self._handle, registry=self._registry,
                            heartbeat=self._heartbeat, config=config, log=self._log)  # fmt: skip
        self._control: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._exit: dict[str, Any] = {"normal": True, "reason": "stopped"}

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
        self._runner.agent = agent
        self._dispatch.accepting = not self._stopping
        try:
            await self._registry.register(self._info, self._handle)
        except MeshError as exc:
            return {"error": exc.to_wire()}
        self._dispatch.start()
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
            self._control = asyncio.get_running_loop().create_task(self._lease.renew())

    @ray.method(concurrency_group="ctl")
    async def health(self) -> dict[str, Any]:
        """Answer from the control lane even while the main loop is blocked."""
        lag = self._heartbeat.lag_s()
        return {
            "incarnation": self._info.incarnation,
            "healthy": await self._lease.loop_runs(lag),
            "loop_lag_s": lag,
            "mailbox_depth": self._mailbox_depth(),
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
        self._dispatch.stop_taking(crashed=not normal)
        self._exit = {"normal": normal, "reason": reason}
        grace = self._config.stop_grace_s
        await self._quietly(self._registry.unregister(self._info.name, self._info.incarnation))
        if self._control is not None:
            self._control.get_loop().call_soon_threadsafe(self._control.cancel)
        for task in self._background:
            task.cancel()
        await self._dispatch.wind_down(normal=normal, grace_s=grace, reason=reason)
        if self._runner.agent is not None:
            await self._quietly(asyncio.wait_for(self._runner.agent.on_stop(), grace))
        self._endpoint.close()
        if self._recorder is not None:
            self._recorder.flush()
        if self._metrics is not None:
            self._metrics.flush()
        self._dispatch.answer_waiting(reason)
        self._stopped.set()
        if self._ticking is not None:
            self._ticking.cancel()

    def _stop_soon(self, *, normal: bool, reason: str) -> None:
        # Requested from inside a handler: the stop waits for that handler to end. After
        # a crash no further message is handled, by this worker or another.
        if not normal:
            self._dispatch.halted = True
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
        self._stats.mailbox_depth = self._mailbox_depth()
        self._stats.sent = self._endpoint.sent
        self._stats.probes_sent = self._endpoint.probes.sent
        self._stats.dead_letters = self._endpoint.dead_letters.total
        # A late reply comes back on a link (`deliver`) or as the late result of a
        # `request` call the ask made; both paths, and only they, record a "late" letter.
        self._stats.late_replies = self._endpoint.dead_letters.by_reason.get("late", 0)
        return dataclasses.asdict(self._stats)

    def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Return this agent's kept dead letters as plain data, oldest first."""
        return [letter.model_dump() for letter in self._endpoint.dead_letters.recent(limit)]

    def _mailbox_depth(self) -> int:
        return self._dispatch.mailbox.qsize()

    # -- inbound ---------------------------------------------------------------------

    async def deliver(self, call: bytes, reply_to: Any = None) -> bytes:
        """Accept a batch call (`protocols.calls`) from one sender link, in its sequence order.

        Returns the call's result: the refused frames as ``(index, wire error)`` (None if
        all were taken), and the reply frames this call carries back: those to its asks
        that were ready within `CARRY_TURNS` loop turns, while nothing sent to the sender
        before them was still on its way. The others go back on this host's link to the
        sender. `reply_to`, the sender's own handle, comes with a link's first call.

        A call that cannot be opened is refused whole (index `WHOLE_CALL`).
        """
        opened = self._acceptance.open_batch_call(call)
        if isinstance(opened, MeshError):
            return pack_result([(WHOLE_CALL, opened.to_wire())], [])
        link_id, seq, frames = opened
        carry = Carry()
        try:
            if not self._gate.enter(link_id, seq):
                await self._gate.wait_turn(link_id, seq)
            try:
                if reply_to is not None:
                    name, incarnation = sender_of(link_id)
                    self._endpoint.peers.learn(name, incarnation, reply_to)
                refusals = await self._acceptance.take_batch(frames, link_id, carry)
            finally:
                self._gate.release(link_id, seq)
            for _ in range(CARRY_TURNS):
                if not carry.waiting:
                    break
                await asyncio.sleep(0)
        finally:
            self._replies.uncarry(carry)
        self._stats.replies_carried += len(carry.frames)
        return pack_result(refusals, carry.frames)

    async def request(self, call: bytes) -> bytes:
        """Accept one ask, a one-frame call, and return its encoded reply or error."""
        opened = self._acceptance.open_call(call)
        if isinstance(opened, MeshError):
            return self._replies.error_frame_for(b"", opened)
        link_id, seq, frame = opened
        if not self._gate.enter(link_id, seq):
            await self._gate.wait_turn(link_id, seq)
        try:
            waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            error = await self._acceptance.accept(frame, link_id, call_waiter=waiter)
        finally:
            self._gate.release(link_id, seq)
        if error is not None:
            return self._replies.error_frame_for(frame, error)
        return await waiter

    @ray.method(num_returns="streaming")
    async def stream(self, call: bytes) -> AsyncIterator[list[bytes]]:
        """Accept one streamed ask, a one-frame call; yield its chunk frames, then its reply."""
        opened = self._acceptance.open_call(call)
        if isinstance(opened, MeshError):
            yield [self._replies.error_frame_for(b"", opened)]
            return
        link_id, seq, frame = opened
        async for out in self._streams.serve(link_id, seq, frame):
            yield out

    @ray.method(num_returns="streaming")
    async def asks(self, call: bytes) -> AsyncIterator[bytes]:
        """Accept the asks of a batch call from the edge; yield their replies as they come.

        Each item is ``[[index, reply frame], ...]`` (`protocols.calls`); a call that
        cannot be opened is answered with one error for all its asks (index `WHOLE_CALL`).
        """
        opened = self._acceptance.open_batch_call(call)
        if isinstance(opened, MeshError):
            yield pack_answers([(WHOLE_CALL, self._replies.error_frame_for(b"", opened))])
            return
        link_id, seq, frames = opened
        self._stats.asks_together += len(frames)
        async for answers in self._ask_batches.serve(link_id, seq, frames):
            yield answers

    # -- control: cancellation, probes, aborts ---------------------------------------------

    async def cancel(self, message_id: str) -> None:
        """Stop handling a message whose asker gave up, or drop it if it has not started."""
        self._dispatch.cancel(message_id)

    async def probe(self, probes: list[Probe]) -> None:
        """Forward deadlock probes along the asks that block the probed asks."""
        self._stats.probes_received += len(probes)
        for victim, error in self._endpoint.probes.forward(probes, self._dispatch.blocking):
            self._stats.deadlocks_broken += 1
            self._log.warning("deadlock across conversations broken", cycle=error.cycle,
                              victim=victim[0], trace_id=victim[3])  # fmt: skip
            await self._quietly(self._endpoint.probes.abort_remote(victim[0], victim[1], error))

    async def abort(self, ask_id: str, error: dict[str, Any]) -> None:
        """Fail one of this agent's outstanding asks (chosen to break a deadlock)."""
        self._endpoint.probes.abort(ask_id, MeshError.from_wire(error))
