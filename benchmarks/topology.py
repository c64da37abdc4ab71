"""Mesh vs hub: N agents talking peer to peer, or through one orchestrator, on raymesh and raw Ray.

The workload is a ring: agent i sends `count` messages to agent (i + 1) % N, all agents
at once, each with at most `window` messages outstanding. The same workload runs five
ways in one run, alternating, so that the noise of this shared machine hits all alike:

- ``mesh``: raymesh agents send straight to their peer (`ctx.tell` / `ctx.ask`).
- ``hub``: every message goes to one orchestrator agent that relays it to the target
  (tells relayed with a tell, asks with an ask whose reply goes back to the sender).
- ``raw-mesh`` / ``raw-hub``: plain async Ray actors, one method call per message, the
  same payload as a pickled dict, no envelope; the hub relays through a raw hub actor.
- ``autogen``: autogen-core's in-process `SingleThreadedAgentRuntime` (mesh only), in
  its own virtualenv and process (`benchmarks.peer`), unless skipped.

Tell throughput counts a message when its receiver has handled it (the clock stops at
the last receipt), not when the sender was told it was accepted, so a hub cannot look
fast by queueing. CPU is each participating actor's own `time.process_time()` delta
(the whole process, Ray's threads included), summed: the cost the machine pays.
Agents and actors are started once for the largest N and reused, since starting a Ray
worker costs more than most measurements here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import ray

from benchmarks.peer import Peer
from benchmarks.percentiles import percentile
from mesh import Agent, Context, Mesh, handler
from protocols import Message

Mode = Literal["tell", "ask"]
WINDOWS: dict[str, int] = {"tell": 256, "ask": 64}
#: A preset's point has every sender send this many windows at least: a sender whose
#: whole share fits in one window never waits on it, and the point would time one burst
#: and the skew of the senders' starts, not a pipeline.
MIN_WINDOWS = 2
BASE_PAYLOAD = 1024
#: A point that takes longer than this is recorded as failed, and the run goes on.
POINT_LIMIT_S = 240.0


@dataclass(frozen=True)
class Plan:
    """Which (agents, payload) points to measure, and how many messages each."""

    agents: tuple[int, ...]
    payloads: tuple[int, ...]
    messages: int  # per measurement, over all senders (at least MIN_WINDOWS per sender)
    modes: tuple[Mode, ...] = ("tell", "ask")

    def points(self) -> list[tuple[int, int]]:
        """Sweep N at 1 KiB, and payloads at one N: the full grid costs more than it tells."""
        pivot = 8 if 8 in self.agents else max(self.agents)
        pts = [(n, BASE_PAYLOAD) for n in self.agents]
        pts += [(pivot, p) for p in self.payloads if p != BASE_PAYLOAD]
        return pts


PLANS: dict[str, Plan] = {
    "quick": Plan(agents=(2, 8), payloads=(BASE_PAYLOAD,), messages=1000),
    "default": Plan(agents=(2, 4, 8, 16), payloads=(64, BASE_PAYLOAD, 16384), messages=3000),
    "full": Plan(
        agents=(2, 4, 8, 16, 32), payloads=(64, BASE_PAYLOAD, 16384, 65536), messages=6000
    ),
}


@dataclass(frozen=True)
class Row:
    """One measured (topology, mode, N, payload) point; the JSON row schema."""

    scenario: str
    topology: str
    mode: str
    agents: int
    payload_bytes: int
    msgs_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_s_per_1k: float | None
    messages: int


@dataclass
class Outcome:
    """The suite's rows, plus notes on what was skipped and why."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``rows`` and ``summary`` parts of the report."""
        return {
            "rows": [asdict(r) for r in self.rows],
            "summary": summarize(self.rows),
            "notes": self.notes,
        }


# -- raymesh side --------------------------------------------------------------------


class TopoLoad(Message, type="bench.topo.load/1"):
    body: bytes


class TopoRelay(Message, type="bench.topo.relay/1"):
    target: str
    ask: bool
    body: bytes


class TopoBurst(Message, type="bench.topo.burst/1"):
    target: str
    hub: str | None
    ask: bool
    count: int
    window: int
    payload_bytes: int


class TopoDone(Message, type="bench.topo.done/1"):
    started: float
    ended: float
    latencies_ms: list[float]


class TopoProbe(Message, type="bench.topo.probe/1"):
    pass


class TopoCounters(Message, type="bench.topo.counters/1"):
    received: int
    last_rx: float
    cpu_s: float


async def _windowed(count: int, window: int, send: Callable[[], Any]) -> TopoDone:
    """Await `send()` `count` times, at most `window` at once; wall-clock start and end.

    `window` lanes each send one message at a time until `count` are sent: no task per
    message, so the harness costs little next to what it measures.
    """
    latencies: list[float] = []
    left = count

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            await send()
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.time()
    await asyncio.gather(*(lane() for _ in range(min(window, count))))
    return TopoDone(started=started, ended=time.time(), latencies_ms=latencies)


class RingAgent(Agent):
    """A ring member, and the hub when asked to relay; counts the loads it handles.

    High concurrency so that a burst in progress does not block its own receipts, and
    so that the hub relays many messages at once, as an orchestrator would.
    """

    concurrency = 512

    async def on_start(self) -> None:
        self.received = 0
        self.last_rx = 0.0

    @handler
    async def on_load(self, msg: TopoLoad, ctx: Context) -> TopoLoad:
        self.received += 1
        self.last_rx = time.time()
        return TopoLoad(body=b"")

    @handler
    async def on_relay(self, msg: TopoRelay, ctx: Context) -> Message | None:
        load = TopoLoad(body=msg.body)
        if msg.ask:
            return await ctx.ask(msg.target, load, timeout=120)
        await ctx.tell(msg.target, load)
        return None

    @handler
    async def on_burst(self, msg: TopoBurst, ctx: Context) -> TopoDone:
        body = b"x" * msg.payload_bytes
        send: Callable[[], Any]
        if msg.hub is not None:
            relay = TopoRelay(target=msg.target, ask=msg.ask, body=body)
            hub = msg.hub
            send = (
                (lambda: ctx.ask(hub, relay, timeout=120))
                if msg.ask
                else (lambda: ctx.tell(hub, relay))
            )
        else:
            load, target = TopoLoad(body=body), msg.target
            send = (
                (lambda: ctx.ask(target, load, timeout=120))
                if msg.ask
                else (lambda: ctx.tell(target, load))
            )
        return await _windowed(msg.count, msg.window, send)

    @handler
    async def on_probe(self, msg: TopoProbe, ctx: Context) -> TopoCounters:
        return TopoCounters(received=self.received, last_rx=self.last_rx, cpu_s=time.process_time())


# -- raw Ray side --------------------------------------------------------------------


@ray.remote(num_cpus=0)
class RawNode:
    """A plain async Ray actor: ring member or raw hub, one method call per message."""

    def __init__(self) -> None:
        self.received = 0
        self.last_rx = 0.0
        self.peers: dict[int, Any] = {}

    async def set_peers(self, peers: dict[int, Any]) -> None:
        self.peers = peers

    async def tell(self, load: dict[str, Any]) -> None:
        self.received += 1
        self.last_rx = time.time()

    async def ask(self, load: dict[str, Any]) -> dict[str, Any]:
        self.received += 1
        self.last_rx = time.time()
        return {"body": b""}

    async def relay_tell(self, target: int, load: dict[str, Any]) -> None:
        await self.peers[target].tell.remote(load)

    async def relay_ask(self, target: int, load: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.peers[target].ask.remote(load)
        return result

    async def burst(
        self, target: int, *, hub: int | None, ask: bool, count: int, window: int, payload: int
    ) -> tuple[float, float, list[float]]:
        load = {"body": b"x" * payload}
        send: Callable[[], Any]
        if hub is not None:
            via = self.peers[hub]
            method = via.relay_ask if ask else via.relay_tell
            send = lambda: method.remote(target, load)  # noqa: E731
        else:
            peer = self.peers[target]
            method = peer.ask if ask else peer.tell
            send = lambda: method.remote(load)  # noqa: E731
        done = await _windowed(count, window, send)
        return done.started, done.ended, done.latencies_ms

    async def probe(self) -> tuple[int, float, float]:
        return self.received, self.last_rx, time.process_time()


# -- the two sides behind one interface ----------------------------------------------


class _Side:
    """Runs bursts and reads counters on `size` ring members plus one hub (index `size`)."""

    async def probe(self, members: Sequence[int]) -> list[tuple[int, float, float]]:
        raise NotImplementedError

    async def burst(
        self, i: int, *, target: int, hub: int | None, ask: bool, count: int, payload: int
    ) -> tuple[float, float, list[float]]:
        raise NotImplementedError


class _MeshSide(_Side):
    def __init__(self, mesh: Mesh, names: list[str]) -> None:
        self.mesh, self.names = mesh, names

    async def probe(self, members: Sequence[int]) -> list[tuple[int, float, float]]:
        got = await asyncio.gather(
            *(
                self.mesh.ask(self.names[m], TopoProbe(), timeout=60, expect=TopoCounters)
                for m in members
            )
        )
        return [(c.received, c.last_rx, c.cpu_s) for c in got]

    async def burst(
        self, i: int, *, target: int, hub: int | None, ask: bool, count: int, payload: int
    ) -> tuple[float, float, list[float]]:
        window = WINDOWS["ask" if ask else "tell"]
        msg = TopoBurst(
            target=self.names[target],
            hub=None if hub is None else self.names[hub],
            ask=ask,
            count=count,
            window=window,
            payload_bytes=payload,
        )
        done = await self.mesh.ask(self.names[i], msg, timeout=600, expect=TopoDone)
        return done.started, done.ended, done.latencies_ms


class _RawSide(_Side):
    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors

    async def probe(self, members: Sequence[int]) -> list[tuple[int, float, float]]:
        return list(await asyncio.gather(*(self.actors[m].probe.remote() for m in members)))

    async def burst(
        self, i: int, *, target: int, hub: int | None, ask: bool, count: int, payload: int
    ) -> tuple[float, float, list[float]]:
        window = WINDOWS["ask" if ask else "tell"]
        result: tuple[float, float, list[float]] = await self.actors[i].burst.remote(
            target, hub=hub, ask=ask, count=count, window=window, payload=payload
        )
        return result


def _percentiles(latencies: list[float]) -> tuple[float | None, float | None, float | None]:
    p50, p95, p99 = (percentile(latencies, share) for share in (0.5, 0.95, 0.99))
    return p50, p95, p99


async def _ring(
    side: _Side, *, n: int, hub: int | None, ask: bool, count: int, payload: int
) -> tuple[float, list[float], float]:
    """One ring run on `side`: (seconds, ask latencies, CPU seconds of the participants)."""
    members = list(range(n)) + ([hub] if hub is not None else [])
    before = await side.probe(members)
    done = await asyncio.gather(
        *(
            side.burst(i, target=(i + 1) % n, hub=hub, ask=ask, count=count, payload=payload)
            for i in range(n)
        )
    )
    expected = [b[0] + count for b in before[:n]]
    deadline = time.monotonic() + 120
    while True:  # tells: wait until every receiver has handled its share
        after = await side.probe(members)
        if all(a[0] >= e for a, e in zip(after, expected, strict=False)):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"receivers got {[a[0] for a in after]}, expected {expected}")
        await asyncio.sleep(0.01)
    started = min(d[0] for d in done)
    ended = max(*(d[1] for d in done), *(a[1] for a in after[:n]))
    cpu = sum(a[2] - b[2] for a, b in zip(after, before, strict=True))
    latencies = [lat for d in done for lat in d[2]] if ask else []
    return ended - started, latencies, cpu


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no result within {POINT_LIMIT_S:.0f} s"
    return f"{type(exc).__name__}: {exc}"


def _row(
    result: tuple[float, list[float], float],
    *,
    topology: str,
    mode: Mode,
    n: int,
    payload: int,
    total: int,
    scenario: str,
) -> Row:
    seconds, latencies, cpu = result
    p50, p95, p99 = _percentiles(latencies)
    return Row(
        scenario=scenario,
        topology=topology,
        mode=mode,
        agents=n,
        payload_bytes=payload,
        msgs_per_s=total / seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        cpu_s_per_1k=cpu / (total / 1000),
        messages=total,
    )


def per_sender_count(plan: Plan, n: int, mode: Mode, *, count: int | None) -> int:
    """Messages each of `n` senders sends at a point: `count` as given, or the plan's."""
    if count is not None:
        return max(count // n, 10)
    return max(plan.messages // n, MIN_WINDOWS * WINDOWS[mode])


def steps(plan: Plan, *, with_peer: bool) -> int:
    """How many measurements `run` makes (for a progress bar)."""
    per_point = 4 + (1 if with_peer else 0)
    return len(plan.points()) * len(plan.modes) * per_point


async def run(
    mesh: Mesh,
    plan: Plan,
    *,
    count: int | None = None,
    on_step: Callable[[str], None] | None = None,
    scenario: str = "local",
    placement: Callable[[int], dict[str, Any]] | None = None,
    peer: Peer | None = None,
) -> Outcome:
    """Measure every topology at every point of `plan`; `count` overrides the plan's messages.

    A plan's point has each sender send `MIN_WINDOWS` windows at least (`per_sender_count`); an
    explicit `count` is taken as given, for smoke runs.

    `placement(i)` gives Ray actor options for ring member i (the hub is i = max N), so a
    caller can spread the ring over nodes. `peer` adds the autogen-core rows; it runs
    on this machine only, so it belongs to a one-machine scenario.
    """
    place = placement or (lambda _i: {})
    on_step = on_step or (lambda _text: None)
    size = max(n for n, _ in plan.points())
    suffix = str(time.time_ns())[-9:]
    names = [f"topo-{suffix}-{i}" for i in range(size)] + [f"topo-{suffix}-hub"]
    outcome = Outcome()
    raw = [RawNode.options(**place(i)).remote() for i in range(len(names))]  # type: ignore[attr-defined]
    spawned: list[str] = []
    try:
        on_step(f"starting {len(names)} agents and {len(raw)} raw actors")
        await asyncio.gather(*(a.set_peers.remote(dict(enumerate(raw))) for a in raw))
        for i, name in enumerate(names):  # one at a time: parallel spawns thrash 2 cores
            await mesh.spawn(RingAgent, name=name, mailbox_size=1 << 16, actor_options=place(i))
            spawned.append(name)
        sides: dict[str, _Side] = {"mesh": _MeshSide(mesh, names), "raw": _RawSide(raw)}
        for n, payload in plan.points():
            for mode in plan.modes:
                ask = mode == "ask"
                per_sender = per_sender_count(plan, n, mode, count=count)
                total = per_sender * n
                for topology, side_name, hub in (
                    ("mesh", "mesh", None),
                    ("hub", "mesh", size),
                    ("raw-mesh", "raw", None),
                    ("raw-hub", "raw", size),
                ):
                    point = f"{topology} {mode}, N={n}, {payload} B"
                    on_step(point)
                    side = sides[side_name]
                    warm = min(per_sender, 20)
                    try:
                        async with asyncio.timeout(POINT_LIMIT_S):
                            await _ring(side, n=n, hub=hub, ask=ask, count=warm, payload=payload)
                            result = await _ring(
                                side, n=n, hub=hub, ask=ask, count=per_sender, payload=payload
                            )
                    except Exception as exc:  # one failed point must not lose the others
                        outcome.notes.append(f"{point} failed: {_describe(exc)}")
                        continue
                    outcome.rows.append(
                        _row(
                            result,
                            topology=topology,
                            mode=mode,
                            n=n,
                            payload=payload,
                            total=total,
                            scenario=scenario,
                        )
                    )
                if peer is not None:
                    on_step(f"autogen {mode}, N={n}, {payload} B")
                    result = await peer.ring(
                        n, ask=ask, count=per_sender, window=WINDOWS[mode], payload_bytes=payload
                    )
                    outcome.rows.append(
                        _row(
                            result,
                            topology="autogen",
                            mode=mode,
                            n=n,
                            payload=payload,
                            total=total,
                            scenario=scenario,
                        )
                    )
    finally:
        for name in spawned:
            await mesh.stop(name)
        for actor in raw:
            ray.kill(actor)
    return outcome


# -- summary -------------------------------------------------------------------------


def _ratios(rows: list[Row], top: str, bottom: str) -> dict[str, dict[str, float]]:
    """``{mode: {"N=8, 1024 B": top/bottom}}`` over the points both were measured at."""
    index = {(r.scenario, r.topology, r.mode, r.agents, r.payload_bytes): r for r in rows}
    out: dict[str, dict[str, float]] = {}
    for (scenario, topology, mode, n, payload), row in index.items():
        other = index.get((scenario, bottom, mode, n, payload))
        if topology != top or other is None or other.msgs_per_s <= 0:
            continue
        prefix = "" if scenario == "local" else f"{scenario}, "
        key = f"{prefix}N={n}, {payload} B"
        out.setdefault(mode, {})[key] = round(row.msgs_per_s / other.msgs_per_s, 3)
    return out


def summarize(rows: list[Row]) -> dict[str, Any]:
    """Throughput ratios: mesh over hub, mesh over raw Ray, hub over raw hub, mesh over autogen."""
    return {
        "mesh_over_hub": _ratios(rows, "mesh", "hub"),
        "mesh_over_raw": _ratios(rows, "mesh", "raw-mesh"),
        "hub_over_raw_hub": _ratios(rows, "hub", "raw-hub"),
        "raw_mesh_over_raw_hub": _ratios(rows, "raw-mesh", "raw-hub"),
        "mesh_over_autogen": _ratios(rows, "mesh", "autogen"),
    }
