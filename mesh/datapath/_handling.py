"""Handling one message: its handler called under its deadline, its outcome answered.

Whatever a handler does (returns, raises, overruns its deadline, returns something that
is not a message), the outcome is one `Message`, None or `MeshError`: an ask's asker
gets it as the reply, and a tell's failure is a dead letter. The state is remembered
before the reply goes, so an asker that has its reply knows the state is on disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from mesh.agent import Agent, AgentInfo, Context
from mesh.config import MeshConfig
from mesh.datapath._deadlines import DeadlineWheel
from mesh.datapath._durable import Durability
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._failures import handler_failed
from mesh.datapath._offloop import is_large, off_loop
from mesh.datapath._replies import Replies
from mesh.errors import DeadlineExceededError, HandlerError, MeshError, NoHandlerError
from mesh.observability import AgentStats, HostMetrics, Recorder, trace_scope
from protocols import Chunk, Envelope, Kind, Message, ProtocolError

__all__ = ["HandlerRunner"]


class HandlerRunner:
    """Runs an agent's handlers for the messages its workers take from the mailbox.

    Args:
        info: The agent's entry, for its name and the spans' role and model.
        stop_soon: Asks the host to stop once this handler ends: called after a
            handler failed if the agent class crashes on errors.
    """

    def __init__(
        self,
        *,
        info: AgentInfo,
        config: MeshConfig,
        endpoint: Endpoint,
        replies: Replies,
        durability: Durability,
        stats: AgentStats,
        log: Any,
        crash_on_error: bool,
        stop_soon: Callable[..., None],
        recorder: Recorder | None = None,
        metrics: HostMetrics | None = None,
    ) -> None:
        self._info = info
        self._name = info.name
        self._watchdogs = config.watchdogs
        self._offloop_bytes = config.offloop_decode_bytes
        self._endpoint = endpoint
        self._codec = endpoint.codec
        self._replies = replies
        self._durability = durability
        self._stats = stats
        self._log = log
        self._crash_on_error = crash_on_error
        self._stop_soon = stop_soon
        self._recorder = recorder
        self._metrics = metrics
        self._deadlines = DeadlineWheel()
        self.agent: Agent | None = None  # set once the agent has started

    async def handle(self, env: Envelope) -> None:
        """Handle `env` and answer it; never raises but for a cancellation."""
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
        if self._durability.handled(env, snapshot=not isinstance(outcome, HandlerError)):
            await self._snapshot()
        if self._metrics is not None:
            failed = type(outcome).__name__ if isinstance(outcome, MeshError) else None
            self._metrics.handled(env.type, ran, failed)
        if isinstance(outcome, MeshError):
            self._stats.failed += 1
            reason = _unhandled_reason(outcome, is_ask=is_ask)
            if reason is not None:
                self._endpoint.dead_letter(reason, env, outcome)
        else:
            self._stats.handled += 1
        if is_ask:
            if isinstance(outcome, Message) and type(outcome) not in self._endpoint.types.settled:
                await self._endpoint.types.share(outcome)
            await self._replies.send(env, self._replies.envelope(env, outcome, spent))
        if isinstance(outcome, HandlerError) and self._crash_on_error:
            # Let it crash: a fresh incarnation from the supervisor, not a bad state.
            self._stop_soon(normal=False, reason=f"crashed: {outcome.message}")

    async def _snapshot(self) -> None:
        # Before the reply: an asker that has its reply knows the state is on disk
        # (when snapshots come after every message).
        assert self.agent is not None
        try:
            await self._durability.save(self.agent)
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
            f"{env.type!r} expired before {self._name!r} could handle it",
            agent=self._name,
            trace_id=env.trace_id,
        )
        self._endpoint.dead_letter("expired", env, error)
        self._replies.answer_call(env, error)

    async def _run_handler(
        self, env: Envelope
    ) -> tuple[Message | MeshError | None, dict[str, float]]:
        sink = self._replies.sinks.get(env.id)
        ctx = Context(self._endpoint, env, self._log, sink=sink)
        if self._recorder is None:
            return await self._call_handler(env, ctx), ctx.spent
        info = self._info
        with self._recorder.span(env, agent=info.name, role=info.role, model=info.model) as span:
            started = time.perf_counter()
            outcome = await self._call_handler(env, ctx)
            self._recorder.outcome(span, outcome if isinstance(outcome, MeshError) else None)
            if sink is not None:  # a span per stream, with its time to first token
                span.attributes["raymesh.stream.chunks"] = sink.emitted
                if sink.first_at is not None:
                    span.attributes["raymesh.stream.ttft_s"] = sink.first_at - started
        return outcome, ctx.spent

    async def _call_handler(self, env: Envelope, ctx: Context) -> Message | MeshError | None:
        assert self.agent is not None
        name = self._name
        route = self.agent.handlers.get(env.type)
        if route is None:
            return NoHandlerError(
                f"agent {name!r} has no handler for {env.type!r}",
                agent=name,
                trace_id=env.trace_id,
                hint=f"it handles: {', '.join(sorted(self.agent.handlers)) or 'nothing'}",
            )
        method_name = route.method
        try:
            if is_large(env, self._offloop_bytes):
                msg = await off_loop(lambda: self._codec.decode_message(env, route.message))
            else:
                msg = self._codec.decode_message(env, route.message)
        except ProtocolError as exc:
            return exc.with_context(agent=name, trace_id=env.trace_id)
        with trace_scope(agent=name, trace_id=env.trace_id, span_id=env.span_id):
            method = getattr(self.agent, method_name)
            worker = asyncio.current_task()
            assert worker is not None
            deadline = env.deadline if self._watchdogs else None
            slot = None if deadline is None else self._deadlines.watch(worker, deadline)
            cancelling = worker.cancelling()
            try:
                called = method(msg, ctx)
                result = await (_drain(called, ctx) if route.streams else called)
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


async def _drain(gen: AsyncGenerator[Any, None], ctx: Context) -> Any:
    """Run a generator handler: what it yields are chunks, until a Message (the reply).

    A str is a text chunk, a dict a data chunk, a `Chunk` emitted as this agent's; the
    first Message yielded is the reply and ends the handler, as a return would.
    """
    try:
        async for item in gen:
            if isinstance(item, Chunk):
                await ctx.emit(text=item.text, data=item.data)
            elif isinstance(item, Message):
                return item
            elif isinstance(item, str):
                await ctx.emit(text=item)
            elif isinstance(item, dict):
                await ctx.emit(data=item)
            else:
                return item  # reported as a reply that is not a Message
        return None
    finally:
        await gen.aclose()


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
