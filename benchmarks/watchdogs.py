"""Watchdogs: how fast deadlocks are found, how late deadlines end, and what they cost.

- Same-chain cycles of 2, 3 and 5 agents: time from the edge's ask to the
  DeadlockError (the cycle is visible in the ask's chain, so no waiting is involved).
- Cross-chain cycles of 2, 3 and 5 agents: N conversations, each holding one agent
  and asking the next; time from the moment the cycle closes to the first
  DeadlockError (probes start after the configured probe delay).
- Deadline epsilon: how long after its deadline an ask to a handler that never
  answers ends.
- Cost: windowed ask throughput between two agents with the instrumentation
  (watchdogs, tracing and metrics) all on and all off, alternating rounds in one run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from benchmarks.percentiles import percentile
from benchmarks.two_agents import Blast, agent_pair, measure
from mesh import Agent, Context, DeadlineExceededError, DeadlockError, Mesh, handler
from protocols import Message

#: The MeshConfig switches of the instrumentation whose cost `cost` measures.
_INSTRUMENTS = ("watchdogs", "tracing", "metrics")


class Loop(Message, type="bench.loop/1"):
    route: list[str]


class Hold(Message, type="bench.hold/1"):
    peer: str
    delay: float


class Nap(Message, type="bench.nap/1"):
    seconds: float


class Done(Message, type="bench.done/1"):
    pass


class Looper(Agent):
    """Relays along a route (a cycle when it comes back), holds and asks, or naps."""

    @handler
    async def on_loop(self, msg: Loop, ctx: Context) -> Done:
        if msg.route:
            await ctx.ask(msg.route[0], Loop(route=msg.route[1:]), expect=Done)
        return Done()

    @handler
    async def on_hold(self, msg: Hold, ctx: Context) -> Done:
        await asyncio.sleep(msg.delay)
        return await ctx.ask(msg.peer, Done(), expect=Done)

    @handler
    async def on_done(self, msg: Done, ctx: Context) -> Done:
        return Done()

    @handler
    async def on_nap(self, msg: Nap, ctx: Context) -> Done:
        await asyncio.sleep(msg.seconds)
        return Done()


@dataclass(frozen=True)
class Latency:
    """A distribution of one measured delay, in milliseconds."""

    scenario: str
    agents: int
    samples: int
    median_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class Cost:
    """Ask throughput with watchdogs, tracing and metrics on and off, in paired rounds.

    The throughputs are medians over the rounds; `ratio` is the median of each round's
    on / off, the two measured back to back, so a drift of the shared machine's speed
    over the run cancels within a round instead of landing on one side.
    """

    on_msgs_per_s: float
    off_msgs_per_s: float
    round_ratios: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """Throughput with the instrumentation on over off: the median round's."""
        return statistics.median(self.round_ratios)


def latency(scenario: str, agents: int, seconds: list[float]) -> Latency:
    ms = sorted(s * 1000 for s in seconds)
    p50, p95 = percentile(ms, 0.5), percentile(ms, 0.95)
    assert p50 is not None  # a measured scenario has latencies
    assert p95 is not None
    return Latency(scenario, agents, len(ms), p50, p95, ms[-1])


async def _spawn_ring(mesh: Mesh, size: int) -> list[str]:
    suffix = str(time.time_ns())[-9:]
    names = [f"ring{size}-{i}-{suffix}" for i in range(size)]
    for name in names:
        await mesh.spawn(Looper, name=name)
    return names


async def same_chain(mesh: Mesh, size: int, repeats: int) -> Latency:
    """Time to a DeadlockError for an ask that goes round a ring of `size` serial agents."""
    names = await _spawn_ring(mesh, size)
    seconds = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            try:
                await mesh.ask(names[0], Loop(route=[*names[1:], names[0]]), timeout=30)
            except DeadlockError:
                seconds.append(time.perf_counter() - start)
            else:
                raise AssertionError("the cycle was not detected")
    finally:
        for name in names:
            await mesh.stop(name)
    return latency("same chain", size, seconds)


async def cross_chain(mesh: Mesh, size: int, repeats: int, *, hold_s: float = 0.2) -> Latency:
    """Time from a cycle of `size` conversations closing to its first DeadlockError."""
    names = await _spawn_ring(mesh, size)
    seconds = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            asks = [
                asyncio.ensure_future(
                    mesh.ask(name, Hold(peer=names[(i + 1) % size], delay=hold_s), timeout=30)
                )
                for i, name in enumerate(names)
            ]
            done, _ = await asyncio.wait(asks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            if not failed or not isinstance(failed[0].exception(), DeadlockError):
                raise AssertionError(f"expected a DeadlockError, got {done}")
            seconds.append(time.perf_counter() - start - hold_s)
            outcomes = await asyncio.gather(*asks, return_exceptions=True)
            if sum(isinstance(o, BaseException) for o in outcomes) != 1:
                raise AssertionError(f"more than one ask failed: {outcomes}")
    finally:
        for name in names:
            await mesh.stop(name)
    return latency("cross chain", size, seconds)


async def deadline_epsilon(mesh: Mesh, repeats: int, *, timeout: float = 0.3) -> Latency:
    """How long after its deadline an ask to a handler that never answers ends."""
    (name,) = await _spawn_ring(mesh, 1)
    seconds = []
    try:
        for _ in range(repeats):
            deadline = time.time() + timeout
            try:
                await mesh.ask(name, Nap(seconds=60), timeout=timeout)
            except DeadlineExceededError:
                seconds.append(max(0.0, time.time() - deadline))
            else:
                raise AssertionError("the ask did not time out")
    finally:
        await mesh.stop(name)
    return latency("deadline epsilon", 1, seconds)


async def cost(mesh: Mesh, *, count: int, rounds: int = 9) -> Cost:
    """Windowed ask throughput between two agents with the runtime's instrumentation on
    (watchdogs, tracing and metrics) and off, `rounds` pairs in one run.

    Each round measures both, in turn first, so neither side always runs on the warmer
    (or the more crowded) machine.
    """
    on = Mesh.local(config=mesh.config.model_copy(update=dict.fromkeys(_INSTRUMENTS, True)))
    off = Mesh.local(config=mesh.config.model_copy(update=dict.fromkeys(_INSTRUMENTS, False)))
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        async with agent_pair(on) as on_pair, agent_pair(off) as off_pair:
            sides = ((True, on, on_pair), (False, off, off_pair))
            for i in range(rounds):
                for enabled, m, pair in sides if i % 2 == 0 else sides[::-1]:
                    blast = Blast(peer=pair[1], mode="ask", count=count, window=64,
                                  payload_bytes=1024)  # fmt: skip
                    rates[enabled].append((await measure(m, pair, blast, "ask")).msgs_per_s)
    finally:
        await on.shutdown()
        await off.shutdown()
    ratios = tuple(a / b for a, b in zip(rates[True], rates[False], strict=True))
    return Cost(statistics.median(rates[True]), statistics.median(rates[False]), ratios)


async def run(mesh: Mesh, *, repeats: int, count: int) -> tuple[list[Latency], Cost]:
    """Run every watchdog measurement and return the latencies and the cost."""
    latencies = [await same_chain(mesh, n, repeats) for n in (2, 3, 5)]
    latencies += [await cross_chain(mesh, n, max(repeats // 4, 3)) for n in (2, 3, 5)]
    latencies.append(await deadline_epsilon(mesh, repeats))
    return latencies, await cost(mesh, count=count)
