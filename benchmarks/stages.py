"""CPU microseconds per message, stage by stage: where a tell or an ask between two agents goes.

``raymesh bench profile`` spawns a blaster and a sink whose hosts time the runtime's own
functions, grouped into stages (`STAGES`), with the thread CPU clock of the event loop
(``time.thread_time_ns``: CPU spent, not wall time, so another engineer's build on the
same cores does not inflate it). Each stage's time is exclusive: a stage nested in
another (sign inside encode) is counted once, in itself. Each timed segment costs one
clock read, calibrated in the same process and subtracted.

What the timers cannot see is accounted for as a whole, so that the rows add up to the
measured CPU of both processes: the loop thread's time outside every stage (asyncio's
scheduling, Ray's task glue on the loop) and the CPU of the process's other threads
(Ray's core worker: gRPC, the submission and completion of calls).

The timers are installed only in the profiled agents' own processes, when they start,
by naming the functions (``module:Class.method``), the way a profiler names them; the
runtime carries no profiling code.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterator
from dataclasses import asdict, dataclass, field
from functools import wraps
from typing import Any, cast

from benchmarks.two_agents import Blast, Blaster, Load, Sink, Timing, agent_pair
from mesh import Context, Mesh, MeshConfig, handler
from protocols import Message

#: The stage of Ray call submissions: how many there were is reported too.
RAY_CALL = "Ray call"
#: The stages, in the order a message meets them, and the functions each one times.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("encode", ("protocols.codec:Codec.encode_message", "protocols.codec:Codec.encode",
                "mesh.datapath._endpoint:Endpoint.envelope")),
    ("sign", ("protocols.signing:Signer.sign",)),
    ("send", ("mesh.agent:Context.tell", "mesh.agent:Context.ask",
              "mesh.agent:Context.allowance", "mesh.datapath._endpoint:Endpoint.tell",
              "mesh.datapath._endpoint:Endpoint.ask", "mesh.datapath._endpoint:Endpoint._ask_once",
              "mesh.datapath._peers:PeerDirectory.link", "mesh.datapath._link:Link.send",
              "mesh.datapath._link:Link.request", "mesh.datapath._link:Link._pump",
              "mesh.datapath._link:Link._ship", "mesh.datapath._link:Link._complete_batch",
              "mesh.datapath._link:Link._complete_request", "mesh.datapath._link:pack_call",
              "mesh.datapath._link:open_result")),
    (RAY_CALL, ("ray.actor:ActorMethod._remote",)),
    ("receive", ("mesh.datapath._sequencing:SequencingGate.enter",
                 "mesh.datapath._sequencing:SequencingGate.wait_turn",
                 "mesh.datapath._sequencing:SequencingGate.release",
                 "mesh.datapath._acceptance:FrameAcceptance.take_batch",
                 "mesh.datapath._acceptance:FrameAcceptance.accept",
                 "mesh.datapath._acceptance:FrameAcceptance._open",
                 "mesh.datapath._acceptance:FrameAcceptance.open_call",
                 "mesh.datapath._acceptance:FrameAcceptance.open_batch_call",
                 "mesh.datapath._acceptance:InboundGuard.check",
                 "mesh.datapath._host:pack_result")),
    ("verify", ("protocols.signing:Signer.verify", "protocols.signing:ReplayGuard.check")),
    ("decode", ("protocols.codec:Codec.decode",)),
    ("validate", ("protocols.codec:Codec.decode_message",)),
    ("dispatch", ("mesh.datapath._dispatch:Dispatcher.admit",
                  "mesh.datapath._dispatch:Dispatcher._work",
                  "mesh.datapath._handling:HandlerRunner._run_handler",
                  "mesh.datapath._handling:HandlerRunner._call_handler",
                  "mesh.datapath._handling:HandlerRunner._snapshot")),
    ("span", ("mesh.observability._spans:Recorder.span",
              "mesh.observability._spans:Recorder.outcome",
              "mesh.observability._spans:Recorder.flush",
              "mesh.datapath._handling:trace_scope")),
    ("metrics", ("mesh.observability._metrics:HostMetrics.handled",
                 "mesh.observability._metrics:HostMetrics.flush")),
    ("reply", ("mesh.datapath._replies:Replies.envelope", "mesh.datapath._replies:Replies.send",
               "mesh.datapath._endpoint:Endpoint._read_reply",
               "mesh.datapath._endpoint:Endpoint.open_reply")),
    ("handler", ("benchmarks.stages:StageSink.on_load",)),
)  # fmt: skip
#: What the timers cannot see, as rows of the table.
LOOP_REST = "event loop, untimed"
OTHER_THREADS = "Ray's threads"
PROFILER = "the profiler's clock"
ROWS = (*(stage for stage, _ in STAGES), LOOP_REST, OTHER_THREADS, PROFILER)
#: Rows that are the benchmark's own code, not the runtime's.
NOT_RUNTIME = ("handler", PROFILER)


class StageClock:
    """Exclusive thread-CPU time per stage, on one thread (the host's event loop).

    A stack of the stages under way: each transition charges the time since the last
    one to the stage on top, so nested stages are counted once.
    """

    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(ROWS, 0)
        self.segments: dict[str, int] = dict.fromkeys(ROWS, 0)
        self.entries: dict[str, int] = dict.fromkeys(ROWS, 0)
        self._stack: list[str] = []
        self._last = 0
        self.thread = threading.get_ident()

    def enter(self, stage: str) -> None:
        """A stage begins (nested in the one under way, if any)."""
        now = time.thread_time_ns()
        if self._stack:
            top = self._stack[-1]
            self.ns[top] += now - self._last
            self.segments[top] += 1
        self._stack.append(stage)
        self.entries[stage] += 1
        self._last = now

    def leave(self) -> None:
        """The innermost stage under way ends."""
        now = time.thread_time_ns()
        stage = self._stack.pop()
        self.ns[stage] += now - self._last
        self.segments[stage] += 1
        self._last = now

    def reset(self) -> None:
        """Forget what was counted (the stack of stages under way stays)."""
        self.ns = dict.fromkeys(ROWS, 0)
        self.segments = dict.fromkeys(ROWS, 0)
        self.entries = dict.fromkeys(ROWS, 0)


def transition_ns(rounds: int = 20_000) -> float:
    """Return what one transition of a `StageClock` costs on this thread, in ns.

    Measured through a timed function, against the same function untimed, so that the
    wrapper's own frames count with the clock reads they surround.
    """
    clock = StageClock()

    def nothing() -> None:
        return None

    timed = _timed(nothing, "sign", clock)
    clock.enter("encode")
    started = time.thread_time_ns()
    for _ in range(rounds):
        nothing()
    plain = time.thread_time_ns() - started
    started = time.thread_time_ns()
    for _ in range(rounds):
        timed()
    wrapped = time.thread_time_ns() - started
    return max(0.0, wrapped - plain) / (2 * rounds)


_CLOCK: StageClock | None = None


class _Timed(Coroutine[Any, Any, Any]):
    """A coroutine whose every step (until it suspends) is timed as one stage."""

    __slots__ = ("_clock", "_coro", "_stage")

    def __init__(self, coro: Coroutine[Any, Any, Any], stage: str, clock: StageClock) -> None:
        self._coro = coro
        self._stage = stage
        self._clock = clock

    def send(self, value: Any) -> Any:
        self._clock.enter(self._stage)
        try:
            return self._coro.send(value)
        finally:
            self._clock.leave()

    def throw(self, *exc: Any) -> Any:
        self._clock.enter(self._stage)
        try:
            return self._coro.throw(*exc)
        finally:
            self._clock.leave()

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        # It steps its coroutine as a generator would (send, throw, __next__).
        return cast(Generator[Any, Any, Any], self)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)


class _TimedScope:
    """A context manager whose entry and exit are timed as one stage."""

    __slots__ = ("_clock", "_inner", "_stage")

    def __init__(self, inner: Any, stage: str, clock: StageClock) -> None:
        self._inner, self._stage, self._clock = inner, stage, clock

    def __enter__(self) -> Any:
        self._clock.enter(self._stage)
        try:
            return self._inner.__enter__()
        finally:
            self._clock.leave()

    def __exit__(self, *exc: Any) -> Any:
        self._clock.enter(self._stage)
        try:
            return self._inner.__exit__(*exc)
        finally:
            self._clock.leave()


def _timed(fn: Callable[..., Any], stage: str, clock: StageClock) -> Callable[..., Any]:
    """`fn` timed as `stage` when called on the clock's thread (elsewhere, as it is)."""
    thread = clock.thread
    if asyncio.iscoroutinefunction(fn):

        @wraps(fn)
        def start(*args: Any, **kwargs: Any) -> Any:
            coro = fn(*args, **kwargs)
            return coro if threading.get_ident() != thread else _Timed(coro, stage, clock)

        return start

    @wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != thread:
            return fn(*args, **kwargs)
        clock.enter(stage)
        try:
            result = fn(*args, **kwargs)
        finally:
            clock.leave()
        if hasattr(result, "__enter__") and hasattr(result, "__exit__"):
            return _TimedScope(result, stage, clock)
        return result

    return call


def resolve(target: str) -> tuple[Any, str, Any]:
    """Return (owner, attribute, value) for ``module:Class.attr`` or ``module:function``."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    raw = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    return owner, attr, raw


def install() -> StageClock:
    """Time every stage's functions in this process, on the calling thread; idempotent."""
    global _CLOCK  # noqa: PLW0603 (one clock per process: the functions are patched once)
    if _CLOCK is not None:
        return _CLOCK
    clock = _CLOCK = StageClock()
    for stage, targets in STAGES:
        for target in targets:
            owner, attr, raw = resolve(target)
            if isinstance(raw, staticmethod):
                setattr(owner, attr, staticmethod(_timed(raw.__func__, stage, clock)))
            else:
                setattr(owner, attr, _timed(raw, stage, clock))
    return clock


# -- the profiled agents -----------------------------------------------------------------


class StageMark(Message, type="bench.stages.mark/1"):
    """Reset the counters, or (with `loads`) report them once that many loads were handled."""

    loads: int | None = None


class StageFigures(Message, type="bench.stages.figures/1"):
    """One process's figures since its last reset."""

    ns: dict[str, int]
    segments: dict[str, int]
    ray_calls: int
    loop_ns: int
    process_ns: int
    transition_ns: float


class _Marked:
    """What both profiled agents do: time their process, reset and report on request."""

    _clock: StageClock
    _loop_ns: int
    _process_ns: int
    loads: int
    _awaited: int
    _reached: asyncio.Event

    def _arm(self) -> None:
        self._clock = install()
        self._reached = asyncio.Event()
        self._reset()

    def _reset(self) -> None:
        self._clock.reset()
        self._loop_ns = time.thread_time_ns()
        self._process_ns = time.process_time_ns()
        self.loads = 0
        self._awaited = 0

    def _loaded(self) -> None:
        self.loads += 1
        if self.loads >= self._awaited:
            self._reached.set()

    async def _mark(self, msg: StageMark) -> StageFigures | None:
        if msg.loads is None:
            self._reset()
            return None
        self._awaited = msg.loads
        self._reached.clear()
        if self.loads < msg.loads:
            await self._reached.wait()
        loop_ns = time.thread_time_ns() - self._loop_ns
        process_ns = time.process_time_ns() - self._process_ns
        return StageFigures(ns=dict(self._clock.ns), segments=dict(self._clock.segments),
                            ray_calls=self._clock.entries[RAY_CALL], loop_ns=loop_ns,
                            process_ns=process_ns, transition_ns=transition_ns())  # fmt: skip


class StageSink(_Marked, Sink):
    """The two-agents sink, timed."""

    async def on_start(self) -> None:
        self._arm()

    @handler
    async def on_load(self, msg: Load, ctx: Context) -> Load:
        self._loaded()
        return Load(body=b"")

    @handler
    async def on_mark(self, msg: StageMark, ctx: Context) -> StageFigures | None:
        return await self._mark(msg)


class StageBlaster(_Marked, Blaster):
    """The two-agents blaster, timed; its sending lanes are the benchmark's own code."""

    async def on_start(self) -> None:
        self._arm()

    @handler
    async def on_blast(self, msg: Blast, ctx: Context) -> Timing:
        load = Load(body=b"x" * msg.payload_bytes)
        left = msg.count

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                if msg.mode == "tell":
                    await ctx.tell(msg.peer, load)
                else:
                    await ctx.ask(msg.peer, load, timeout=60)

        started = time.perf_counter()
        lanes = [_Timed(lane(), "handler", self._clock) for _ in range(min(msg.window, msg.count))]
        await asyncio.gather(*lanes)
        return Timing(seconds=time.perf_counter() - started, latencies_ms=[])

    @handler
    async def on_mark(self, msg: StageMark, ctx: Context) -> StageFigures | None:
        return await self._mark(msg)


# -- the measurement ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One profiled stream: CPU microseconds per message by row, both processes summed."""

    scenario: str
    messages: int
    us: dict[str, float]
    total_us: float
    ray_calls_per_1k: float
    by_process_us: dict[str, float] = field(default_factory=dict)

    @property
    def runtime_us(self) -> float:
        """What the runtime spent per message: everything but the benchmark's own code."""
        return self.total_us - sum(self.us.get(row, 0.0) for row in NOT_RUNTIME)


def per_message(figures: dict[str, StageFigures], messages: int) -> tuple[dict[str, float], float]:
    """Sum both processes' figures into microseconds per message by row, and the total.

    Each timed segment includes one clock transition: that cost is taken off the stage
    and shown as the profiler's own row.
    """
    us = dict.fromkeys(ROWS, 0.0)
    for fig in figures.values():
        timed = 0.0
        for row, ns in fig.ns.items():
            clock = min(ns, fig.segments.get(row, 0) * fig.transition_ns)
            us[row] += (ns - clock) / 1000 / messages
            us[PROFILER] += clock / 1000 / messages
            timed += ns
        us[LOOP_REST] += max(0.0, fig.loop_ns - timed) / 1000 / messages
        us[OTHER_THREADS] += max(0, fig.process_ns - fig.loop_ns) / 1000 / messages
    return us, sum(us.values())


async def profile(mesh: Mesh, scenario: str, blast: Blast, pair: tuple[str, str]) -> Scenario:
    """Warm up, reset both processes' counters, run `blast`, and return its figures."""
    blaster, sink = pair
    await mesh.ask(blaster, blast.model_copy(update={"count": min(blast.count, 500)}), timeout=120)
    await mesh.ask(sink, StageMark(loads=min(blast.count, 500)), timeout=120)
    for name in (blaster, sink):
        await mesh.ask(name, StageMark(), timeout=60)
    await mesh.ask(blaster, blast, timeout=600)
    figures = {
        "sender": await mesh.ask(blaster, StageMark(loads=0), timeout=60, expect=StageFigures),
        "receiver": await mesh.ask(sink, StageMark(loads=blast.count), timeout=120,
                                   expect=StageFigures),
    }  # fmt: skip
    us, total = per_message(figures, blast.count)
    by_process = {side: fig.process_ns / 1000 / blast.count for side, fig in figures.items()}
    calls = sum(fig.ray_calls for fig in figures.values()) * 1000 / blast.count
    return Scenario(scenario, blast.count, us, total, calls, by_process)


async def run(mesh: Mesh, *, count: int, payload_bytes: int = 1024) -> list[Scenario]:
    """Profile tells and asks between two agents, unsigned, and asks on a signed mesh."""
    signed = Mesh.local(config=MeshConfig(**{**mesh.config.model_dump(),
                                             "secret": os.urandom(24).hex()}))  # fmt: skip
    out = []
    try:
        for where, name, mode, window in ((mesh, "tell", "tell", 256), (mesh, "ask", "ask", 64),
                                          (signed, "ask, signed", "ask", 64)):  # fmt: skip
            pairing = agent_pair(where, blaster_cls=StageBlaster, sink_cls=StageSink,
                                 prefix="stages")  # fmt: skip
            async with pairing as pair:
                blast = Blast(peer=pair[1], mode=mode, count=count, window=window,
                              payload_bytes=payload_bytes)  # fmt: skip
                out.append(await profile(where, name, blast, pair))
    finally:
        await signed.shutdown()
    return out


def as_json(scenarios: list[Scenario]) -> dict[str, Any]:
    """The ``profile`` part of the report."""
    rows = [{**asdict(s), "runtime_us": s.runtime_us} for s in scenarios]
    return {"rows": list(ROWS), "not_runtime": list(NOT_RUNTIME), "scenarios": rows}
