"""Two agents, side by side with two plain Ray actors: tells/s, asks/s and idle latency.

Both sides run the same loop inside an actor (so the driver is not on the path): send
`count` messages of `payload_bytes` to the peer with at most `window` outstanding, and
time it. raymesh sends typed msgpack envelopes through its links; the baseline makes
one Ray actor call per message with the same payload as a pickled dict. Ratios measured
in one run are what to quote: this machine is shared and absolute rates drift.

Asks one at a time (the idle round trip) are measured in `IDLE_ROUNDS` paired rounds,
raymesh and raw Ray back to back, each first in turn, and each side's latencies pooled
over its rounds: on this machine the round trip drifts by a third within a minute, and
two streams timed one after the other compared the drift as much as the systems.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import ray

from benchmarks.percentiles import percentile
from mesh import Agent, Context, Mesh, MeshConfig, handler
from protocols import Message


class Load(Message, type="bench.load/1"):
    body: bytes


class Blast(Message, type="bench.blast/1"):
    peer: str
    mode: str  # "tell" | "ask"
    count: int
    window: int
    payload_bytes: int


class Timing(Message, type="bench.timing/1"):
    seconds: float
    latencies_ms: list[float]


async def _windowed(count: int, window: int, send: Any) -> tuple[float, list[float]]:
    """Run `send()` `count` times with at most `window` in flight; return time, latencies."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(window)

    async def one() -> None:
        async with gate:
            t0 = time.perf_counter()
            await send()
            latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start, latencies


class Sink(Agent):
    """Takes loads; answers asks with an empty load (a tell's return value is dropped)."""

    concurrency = 64

    @handler
    async def on_load(self, msg: Load, ctx: Context) -> Load:
        return Load(body=b"")


class Blaster(Agent):
    """Sends the measured stream from inside the mesh."""

    @handler
    async def on_blast(self, msg: Blast, ctx: Context) -> Timing:
        load = Load(body=b"x" * msg.payload_bytes)
        if msg.mode == "tell":
            seconds, lat = await _windowed(msg.count, msg.window, lambda: ctx.tell(msg.peer, load))
        else:
            seconds, lat = await _windowed(
                msg.count, msg.window, lambda: ctx.ask(msg.peer, load, timeout=60)
            )
        return Timing(seconds=seconds, latencies_ms=lat)


@ray.remote(num_cpus=0)
class RawSink:
    """The baseline's receiver: one method call per message."""

    async def tell(self, load: dict[str, Any]) -> None:
        return None

    async def ask(self, load: dict[str, Any]) -> dict[str, Any]:
        return {"body": b""}


@ray.remote(num_cpus=0)
class RawBlaster:
    """The baseline's sender, running the same windowed loop."""

    async def blast(
        self, sink: Any, mode: str, count: int, window: int, payload_bytes: int
    ) -> tuple[float, list[float]]:
        load = {"body": b"x" * payload_bytes}
        method = sink.tell if mode == "tell" else sink.ask
        return await _windowed(count, window, lambda: method.remote(load))


#: Paired rounds of asks one at a time: raymesh and raw Ray back to back, each first in turn.
IDLE_ROUNDS = 6


@dataclass(frozen=True)
class Row:
    """One measured stream."""

    scenario: str
    system: str
    mode: str
    window: int
    messages: int
    msgs_per_s: float
    p50_ms: float
    p99_ms: float


def _row(scenario: str, system: str, blast: Blast, seconds: float, lat: list[float]) -> Row:
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    assert p50 is not None  # a measured stream has latencies
    assert p99 is not None
    return Row(scenario, system, blast.mode, blast.window, blast.count,
               blast.count / seconds, p50, p99)  # fmt: skip


@asynccontextmanager
async def agent_pair(
    mesh: Mesh, *, blaster_cls: type[Blaster] = Blaster, sink_cls: type[Sink] = Sink,
    prefix: str = "bench",
) -> AsyncIterator[tuple[str, str]]:  # fmt: skip
    """Spawn a blaster and a sink on `mesh`; yield their names; stop them after."""
    suffix = str(time.time_ns())[-9:]
    blaster, sink = f"{prefix}-blaster-{suffix}", f"{prefix}-sink-{suffix}"
    await mesh.spawn(sink_cls, name=sink)
    await mesh.spawn(blaster_cls, name=blaster)
    try:
        yield blaster, sink
    finally:
        await mesh.stop(blaster)
        await mesh.stop(sink)


async def measure(mesh: Mesh, pair: tuple[str, str], blast: Blast, scenario: str) -> Row:
    """Warm up, then run `blast` from the pair's blaster to its sink and return the row."""
    await mesh.ask(pair[0], blast.model_copy(update={"count": min(blast.count, 200)}), timeout=120)
    timing = await mesh.ask(pair[0], blast, timeout=600, expect=Timing)
    return _row(scenario, "raymesh", blast, timing.seconds, timing.latencies_ms)


async def run(mesh: Mesh, *, count: int, payload_bytes: int = 1024) -> list[Row]:
    """Measure raymesh and raw Ray side by side, alternating, and return the rows."""
    raw_sink, raw_blaster = RawSink.remote(), RawBlaster.remote()  # type: ignore[attr-defined]
    scenarios = [
        ("tell, windowed", "tell", 256, count),
        ("ask, windowed", "ask", 64, count),
        ("ask, one at a time", "ask", 1, max(count // 10, 200)),
    ]
    rows: list[Row] = []
    try:
        async with agent_pair(mesh) as pair:
            for scenario, mode, window, n in scenarios:
                blast = Blast(peer=pair[1], mode=mode, count=n, window=window,
                              payload_bytes=payload_bytes)  # fmt: skip
                if window == 1:
                    rows += await _paired(mesh, pair, (raw_sink, raw_blaster), blast, scenario)
                    continue
                rows.append(await measure(mesh, pair, blast, scenario))
                await raw_blaster.blast.remote(raw_sink, mode, min(n, 200), window, payload_bytes)
                seconds, lat = await raw_blaster.blast.remote(
                    raw_sink, mode, n, window, payload_bytes
                )
                rows.append(_row(scenario, "raw Ray", blast, seconds, lat))
    finally:
        ray.kill(raw_sink)
        ray.kill(raw_blaster)
    return rows


async def _paired(
    mesh: Mesh, pair: tuple[str, str], raw: tuple[Any, Any], blast: Blast, scenario: str
) -> list[Row]:
    """Measure `blast` on raymesh and raw Ray in `IDLE_ROUNDS` alternating rounds; pool each."""
    raw_sink, raw_blaster = raw
    each = blast.model_copy(update={"count": max(blast.count // IDLE_ROUNDS, 1)})
    args = (blast.mode, each.count, blast.window, blast.payload_bytes)
    await mesh.ask(pair[0], each.model_copy(update={"count": min(each.count, 200)}), timeout=120)
    await raw_blaster.blast.remote(raw_sink, blast.mode, min(each.count, 200), blast.window,
                                   blast.payload_bytes)  # fmt: skip
    taken: dict[str, tuple[float, list[float]]] = {"raymesh": (0.0, []), "raw Ray": (0.0, [])}
    for round_ in range(IDLE_ROUNDS):
        for system in ("raymesh", "raw Ray") if round_ % 2 == 0 else ("raw Ray", "raymesh"):
            if system == "raymesh":
                timing = await mesh.ask(pair[0], each, timeout=600, expect=Timing)
                seconds, lat = timing.seconds, timing.latencies_ms
            else:
                seconds, lat = await raw_blaster.blast.remote(raw_sink, *args)
            total_s, pooled = taken[system]
            taken[system] = (total_s + seconds, pooled + lat)
    counted = each.model_copy(update={"count": each.count * IDLE_ROUNDS})
    return [_row(scenario, system, counted, *taken[system]) for system in ("raymesh", "raw Ray")]


@dataclass(frozen=True)
class SigningCost:
    """One stream measured on an unsigned and on a signed mesh (HMAC-SHA256 frames)."""

    scenario: str
    unsigned_msgs_per_s: float
    signed_msgs_per_s: float

    @property
    def ratio(self) -> float:
        """Signed over unsigned throughput: 1.0 means signing costs nothing."""
        return self.signed_msgs_per_s / self.unsigned_msgs_per_s


async def signing_cost(
    mesh: Mesh, *, count: int, payload_bytes: int = 1024, rounds: int = 2
) -> list[SigningCost]:
    """Measure the same streams without and with a cluster secret, alternating rounds.

    The signed pair lives in the same Ray beside the unsigned one, under a second edge
    whose config has a secret; each figure is the best of `rounds`.
    """
    secret = os.urandom(24).hex()
    signed = Mesh.local(config=MeshConfig(**{**mesh.config.model_dump(), "secret": secret}))
    costs = []
    try:
        async with agent_pair(mesh) as plain, agent_pair(signed) as guarded:
            for scenario, mode, window in (("tell, windowed", "tell", 256),
                                           ("ask, windowed", "ask", 64)):  # fmt: skip
                best = {"plain": 0.0, "signed": 0.0}
                for _ in range(rounds):
                    for key, where, pair in (("plain", mesh, plain), ("signed", signed, guarded)):
                        blast = Blast(peer=pair[1], mode=mode, count=count, window=window,
                                      payload_bytes=payload_bytes)  # fmt: skip
                        row = await measure(where, pair, blast, scenario)
                        best[key] = max(best[key], row.msgs_per_s)
                costs.append(SigningCost(scenario, best["plain"], best["signed"]))
    finally:
        await signed.shutdown()
    return costs
