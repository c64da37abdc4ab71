"""Decode bombs at a live agent: loop time and heap against the issue's targets.

A 1 MiB payload of empty msgpack arrays once cost an agent 130 MiB of heap and 4.3 s
of event-loop time. Here such payloads go to a real agent as raw frames (bound to its
incarnation, as a hostile peer holding its address would send them) while another
caller keeps asking it something small, and the agent itself reports:

- loop time: the longest stall of its event loop while the payload was taken, decoded
  (or refused) and handled, from a 1 ms ticker inside the agent (target: 50 ms);
- heap: the peak of Python allocations over the baseline, by tracemalloc in the agent,
  measured in a second pass of its own, as tracing slows the decoding (target: 10 MiB);
- the small asks answered meanwhile, and the slowest of them.

Beside each, the same bytes unpacked without limits in a plain process (tracemalloc
peak and time): what the payload would have cost before the limits. Shapes: the issue's
bomb (one array of a million empty arrays), empty arrays and maps in arrays short
enough to pass ``max_array_len`` (the object budget refuses them), and a large payload
that is legitimate (90,000 floats), decoded off the event loop and handled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import re
import struct
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack
from rich.table import Table

from mesh import Agent, Context, Mesh, handler
from mesh.control import AgentSpec, start_host
from protocols import DEFAULT_MAX_PAYLOAD_BYTES, Envelope, Kind, Message
from protocols.calls import open_result, pack_call

__all__ = ["HEAP_TARGET_MIB", "LOOP_TARGET_MS", "BombFigures", "Shape", "bomb_payloads", "run",
           "table"]  # fmt: skip

#: The targets of issue #13: the longest the loop may stall, and the heap a bomb may take.
LOOP_TARGET_MS = 50.0
HEAP_TARGET_MIB = 10.0
_MIB = 1024 * 1024


class Bulk(Message, type="raymesh.bench.bulk/1"):
    """Any data: what a bomb claims to be."""

    data: Any = None


class Small(Message, type="raymesh.bench.small/1"):
    """A small ask, answered at once."""

    n: int = 0


class Watch(Message, type="raymesh.bench.watch/1"):
    """Report what was seen; with `reset`, start again (tracing the heap if `heap`)."""

    reset: bool = False
    heap: bool = False


class Watched(Message, type="raymesh.bench.watched/1"):
    """What the agent saw since `Watch`."""

    stall_ms: float
    heap_peak_bytes: int | None
    bulk_handled: int


class Target(Agent):
    """Takes `Bulk` payloads and answers `Small` asks, and watches its own event loop."""

    concurrency = 4  # small asks are answered while a bulk payload is decoded

    def __init__(self) -> None:
        self._stall = 0.0
        self._heap_base: int | None = None
        self._bulk = 0
        self._ticker: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            self._stall = max(self._stall, now - last - 0.001)
            last = now

    @handler
    async def on_bulk(self, msg: Bulk, ctx: Context) -> None:
        self._bulk += 1

    @handler
    async def on_small(self, msg: Small, ctx: Context) -> Small:
        return msg

    @handler
    async def on_watch(self, msg: Watch, ctx: Context) -> Watched:
        peak = None
        if self._heap_base is not None:
            peak = tracemalloc.get_traced_memory()[1] - self._heap_base
        seen = Watched(stall_ms=self._stall * 1e3, bulk_handled=self._bulk, heap_peak_bytes=peak)
        if msg.reset:
            self._stall, self._bulk = 0.0, 0
            if self._heap_base is not None:
                tracemalloc.stop()
                self._heap_base = None
            if msg.heap:
                tracemalloc.start()
                self._heap_base = tracemalloc.get_traced_memory()[0]
        return seen


def _array(n: int) -> bytes:
    return b"\xdd" + struct.pack(">I", n)


def bomb_payloads(cap: int = DEFAULT_MAX_PAYLOAD_BYTES) -> dict[str, bytes]:
    """Return the bombs and the legitimate large payload, each a `Bulk` of at most `cap`."""
    body = cap - 16  # the map and its key around the data
    per = 60_000  # arrays short enough for the default max_array_len (100,000)
    chunks = body // (per + 5)
    head = b"\x81\xa4data"
    return {
        "one array of 1 MiB of empty arrays (the issue's)": head + _array(body) + b"\x90" * body,
        "empty arrays in arrays of 60,000": (
            head + _array(chunks) + (_array(per) + b"\x90" * per) * chunks
        ),
        "empty maps in arrays of 60,000": (
            head + _array(chunks) + (_array(per) + b"\x80" * per) * chunks
        ),
        "90,000 floats (legitimate)": head + msgpack.packb([0.5 + i for i in range(90_000)]),
    }


@dataclass
class Shape:
    """How the agent took one payload."""

    name: str
    bytes: int
    outcome: str = ""
    stall_ms: float = 0.0
    heap_mib: float | None = None
    asks_answered: int = 0
    slowest_ask_ms: float = 0.0
    unbounded_ms: float = 0.0
    unbounded_heap_mib: float = 0.0

    @property
    def held(self) -> bool:
        """True when the loop and the heap stayed within their targets."""
        heap_ok = self.heap_mib is not None and self.heap_mib <= HEAP_TARGET_MIB
        return self.stall_ms <= LOOP_TARGET_MS and heap_ok and self.asks_answered > 0


@dataclass
class BombFigures:
    """Every shape's figures."""

    shapes: list[Shape] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """True when every shape met its targets."""
        return bool(self.shapes) and all(shape.held for shape in self.shapes)


class _Bomber:
    """Sends raw frames to one host on a link of its own, bound to the host's incarnation."""

    def __init__(self, host: Any, name: str, incarnation: str) -> None:
        self._host = host
        self.name = name
        self._incarnation = incarnation
        self._mine = uuid.uuid4().hex[:16]
        self._link = f"bench-bomber#{self._mine}/0"
        self._seq = 0

    async def send(self, payload: bytes) -> None:
        env = Envelope(kind=Kind.TELL, type=Bulk.type_tag or "", sender="bench-bomber",
                       recipient=self.name, payload=payload, to_incarnation=self._incarnation,
                       from_incarnation=self._mine)  # fmt: skip
        frame = msgpack.packb(_fields(env), use_bin_type=True)
        call = pack_call(self._link, self._seq, [frame])
        refused, _ = open_result(await self._host.deliver.remote(call))
        self._seq += 1
        if refused:
            raise RuntimeError(f"the host refused the frame at its door: {refused}")


def _fields(env: Envelope) -> list[Any]:
    # The frame's header as the codec writes it, for a payload the codec would not send.
    return [2, env.kind.value, env.type, env.sender, env.recipient, env.trace_id, env.span_id,
            None, None, None, 0, [], env.id, env.payload, None, env.to_incarnation,
            env.from_incarnation, 0]  # fmt: skip


async def _asks_meanwhile(mesh: Mesh, name: str, stop: asyncio.Event) -> list[float]:
    took: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        await mesh.ask(name, Small(n=len(took)), expect=Small, timeout=30)
        took.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    return took


async def _take(
    mesh: Mesh, bomber: _Bomber, host: Any, payload: bytes, *, heap: bool
) -> tuple[Watched, list[float], str]:
    """Send `payload` while asking small things; return what the agent saw, and the outcome."""
    name = bomber.name
    failed = (await host.stats.remote())["failed"]
    await mesh.ask(name, Watch(reset=True, heap=heap), expect=Watched)
    stop = asyncio.Event()
    asking = asyncio.create_task(_asks_meanwhile(mesh, name, stop))
    await asyncio.sleep(0.05)
    await bomber.send(payload)
    outcome = ""
    deadline = time.monotonic() + 60
    while not outcome and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if (await mesh.ask(name, Watch(), expect=Watched)).bulk_handled:
            outcome = "decoded and handled"
        elif (await host.stats.remote())["failed"] > failed:
            letters = await host.dead_letters.remote(1)
            outcome = "refused: " + (_limit_of(letters[-1]) if letters else "?")
    await asyncio.sleep(0.05)
    stop.set()
    took = await asking
    seen = await mesh.ask(name, Watch(reset=True), expect=Watched)
    return seen, took, outcome or "no outcome within 60 s"


async def run(mesh: Mesh) -> BombFigures:
    """Send each payload of `bomb_payloads` to a fresh agent; return what it cost the agent."""
    figures = BombFigures()
    payloads = bomb_payloads()
    # In a process of its own: tracemalloc in this one, beside the threads of Ray's core
    # worker, once crashed it (SIGSEGV in tracemalloc's traceback_new, no Python frame).
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        unbounded = list(pool.map(_unbounded, payloads.values()))
    for (shape_name, payload), costs in zip(payloads.items(), unbounded, strict=True):
        shape = Shape(shape_name, len(payload))
        shape.unbounded_ms, shape.unbounded_heap_mib = costs
        name = f"bench-bomb-{uuid.uuid4().hex[:8]}"
        host, info = await start_host(AgentSpec.build(name=name, agent=Target), mesh.config)
        bomber = _Bomber(host, name, info.incarnation)
        try:
            for heap in (False, True):
                seen, took, outcome = await _take(mesh, bomber, host, payload, heap=heap)
                if heap:
                    peak = seen.heap_peak_bytes
                    shape.heap_mib = None if peak is None else peak / _MIB
                else:
                    shape.outcome = outcome
                    shape.stall_ms = seen.stall_ms
                    shape.asks_answered = len(took)
                    shape.slowest_ask_ms = max(took, default=0.0) * 1e3
        finally:
            await host.stop.remote()
        figures.shapes.append(shape)
    return figures


def _limit_of(letter: dict[str, Any]) -> str:
    """Return the error type of a dead letter and the setting its hint says to raise."""
    found = re.search(r"raise (\w+) \(RAYMESH_", letter["error"])
    return f"{letter['error_type']}, {found.group(1) if found else 'no setting named'}"


def _unbounded(payload: bytes) -> tuple[float, float]:
    """Return what unpacking `payload` with no limits costs: ms and peak MiB (in a process
    without Ray's threads)."""
    tracemalloc.start()
    started = time.perf_counter()
    with contextlib.suppress(ValueError):  # past msgpack's own stack: no cost to show
        msgpack.unpackb(payload, strict_map_key=False)
    took = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return took * 1e3, peak / _MIB


def table(figures: BombFigures) -> Table:
    """Return the suite's table: each payload's cost to the agent, and before the limits."""
    result = Table(title=f"decode bombs at a live agent (targets: loop stall <= "
                   f"{LOOP_TARGET_MS:g} ms, heap <= {HEAP_TARGET_MIB:g} MiB)")  # fmt: skip
    for column in ("payload", "bytes", "outcome", "loop stall ms", "heap MiB", "small asks "
                   "answered (slowest ms)", "unlimited unpack ms / MiB", "held"):  # fmt: skip
        result.add_column(column, justify="left" if column in ("payload", "outcome") else "right")
    for shape in figures.shapes:
        heap = "-" if shape.heap_mib is None else f"{shape.heap_mib:.1f}"
        result.add_row(shape.name, f"{shape.bytes:,}", shape.outcome, f"{shape.stall_ms:.1f}",
                       heap, f"{shape.asks_answered} ({shape.slowest_ask_ms:.1f})",
                       f"{shape.unbounded_ms:,.0f} / {shape.unbounded_heap_mib:.0f}",
                       "yes" if shape.held else "NO")  # fmt: skip
    return result
