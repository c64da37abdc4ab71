"""Bad frames straight at a live agent's host: no crash, typed refusals, dead letters, latency.

The frames (see `benchmarks.chaos._frames`) bypass the sender's codec and go to the host's
own inbound methods, a batch per Ray call, the way a buggy or hostile peer would call
them. Every frame must end one of three ways: refused at the door with a typed error,
taken and then dead-lettered (a bad payload, no handler, a stray reply), or, for the
rare mutation that is still a valid message, handled. The agent must keep serving, in
the same incarnation, and keep serving well while the flood lasts.

Then decode bombs (see `benchmarks.chaos._frames.decode_bombs`), one call each: every
bomb must be refused by a decode limit (a `DecodeLimitError` in its dead letter, or at
the door for the payload over the cap), the long string, which is valid, handled,
and the agent must still serve in the same incarnation.

Latency is judged against a fair baseline: the same well-formed ask, from the same
driver, at the same fixed rate (open loop: one ask every `every_s`, whether or not the
earlier ones have been answered, so a slow agent cannot lower the rate it is measured
at), first for `baseline_asks` asks with no flood, then for as long as the flood
lasts. The tail compared is the p99 when each phase has 1,000 asks or more; with fewer
it is the highest percentile that still has `MIN_BEYOND` asks beyond it in each phase
(p98 of 600 asks): a p99 of 100 asks is their maximum, one stray stall.

The same asks go, interleaved, to a bystander: an agent of the same kind that no bad
frame reaches. On a small machine the flood's own work (the flooder's process, and the
host's share of it) slows every process, the bystander's too; its tail during the flood
over its tail before is that, the machine's slowdown. The fuzzed agent's tail during the
flood over the bystander's, in the same phase, is what the flood costs the agent beyond
the machine: the figure judged, with 2x its target. (On two cores the machine's slowdown
alone measured up to 3x; the fuzzed agent's own tail during the flood over its tail
before is shown beside it.)
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayError

from benchmarks.chaos._agents import Echoer, Say
from benchmarks.chaos._figure import Figure, as_ms, as_share, as_times
from benchmarks.chaos._frames import SENDER, Address, decode_bombs, make_frames, random_frame
from benchmarks.chaos._support import error_name, eventually, unique
from benchmarks.percentiles import percentile
from mesh.edge import Mesh
from mesh.errors import DeliveryError, MeshError, ProtocolError
from protocols import Codec, Kind
from protocols.calls import open_result, pack_call
from protocols.errors import error_class

__all__ = ["MIN_BEYOND", "FuzzFigures", "fuzz_agent", "is_typed", "tail_share"]

#: Frames per Ray call of the flood (a sender's link coalesces about as many).
BATCH = 250
#: Frames sent one by one on the `request` lane, whose answer is the call's result.
REQUEST_LANE_FRAMES = 20
#: The fuzzed agent's tail under the flood may be at most this many times the bystander's.
MAX_SLOWDOWN = 2.0
#: Seconds after a flood before the next quiet phase's asks (`rounds` above 1).
SETTLE_S = 0.1
#: Asks each phase must have beyond the percentile compared (the tail), so that it is
#: not one stall; 10 beyond the p99 takes 1,000 asks.
MIN_BEYOND = 10


@dataclass
class Phases:
    """One agent's well-formed asks before and during the flood: p50 and tail, in ms."""

    before_p50_ms: float | None = None
    before_tail_ms: float | None = None
    during_p50_ms: float | None = None
    during_tail_ms: float | None = None

    @property
    def slowdown(self) -> float | None:
        """The tail during the flood over the tail before it."""
        return _ratio(self.during_tail_ms, self.before_tail_ms)

    def latencies(self) -> str:
        """Return "p50 / tail before; p50 / tail during" for the table."""
        before, during = (f"{as_ms(p50, digits=1)} / {as_ms(tail, digits=1)}" for p50, tail in
                          ((self.before_p50_ms, self.before_tail_ms),
                           (self.during_p50_ms, self.during_tail_ms)))  # fmt: skip
        return f"{before}; {during}"


@dataclass
class FuzzFigures:
    """How a live agent took a flood of bad frames, and how it served meanwhile."""

    frames: int
    seed: int
    by_kind: dict[str, int] = field(default_factory=dict)
    crashes: int = 0
    refused: int = 0
    refused_typed: int = 0
    received: int = 0
    handled: int = 0
    dead_letters: int = 0
    serving: bool = False
    asks_per_s: float = 0.0
    baseline_asks: int = 0
    fuzzed_asks: int = 0
    #: Failed well-formed asks, by agent, phase and error: none is expected.
    ask_errors: dict[str, int] = field(default_factory=dict)
    #: The percentile compared (0.99 at most; see `tail_share`).
    tail: float = 0.99
    #: The fuzzed agent's asks, and the same asks to a bystander no bad frame reaches.
    agent: Phases = field(default_factory=Phases)
    bystander: Phases = field(default_factory=Phases)
    flood_s: float = 0.0
    bombs: int = 0
    bombs_refused_by_limit: int = 0
    bombs_handled: int = 0

    @property
    def unhandled(self) -> int:
        """Frames the host received and did not handle: each must have left a dead letter."""
        return self.received - self.handled

    @property
    def own_slowdown(self) -> float | None:
        """The fuzzed agent's tail during the flood over the bystander's (judged)."""
        return _ratio(self.agent.during_tail_ms, self.bystander.during_tail_ms)

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"fuzz: {self.frames:,} bad frames at a live agent (seed {self.seed})"
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.by_kind.items()))
        failed = sum(self.ask_errors.values())
        errors = ", ".join(f"{e} {n}" for e, n in sorted(self.ask_errors.items()))
        tail = f"p{self.tail * 100:g}"
        return [
            Figure(name, "frames sent, by kind", f"{self.frames:,}: {kinds}"),
            Figure(
                name,
                "crashes (agent died or changed incarnation)",
                str(self.crashes),
                "0",
                self.crashes == 0,
            ),
            Figure(
                name,
                "refusals that are typed errors",
                as_share(self.refused_typed, self.refused),
                "100%",
                self.refused > 0 and self.refused_typed == self.refused,
            ),
            Figure(
                name,
                "frames not handled that left a dead letter",
                as_share(self.dead_letters, self.unhandled),
                "100%",
                self.dead_letters == self.unhandled,
            ),
            Figure(
                name,
                "frames handled (still valid, and the well-formed asks)",
                f"{self.handled:,}",
            ),
            Figure(
                name,
                "decode bombs refused by a decode limit (or handled, if valid)",
                as_share(self.bombs_refused_by_limit + self.bombs_handled, self.bombs),
                "100%",
                self.bombs > 0 and self.bombs_refused_by_limit + self.bombs_handled == self.bombs,
            ),
            Figure(
                name,
                "still serving afterwards, same incarnation",
                "yes" if self.serving else "no",
                "yes",
                self.serving,
            ),
            Figure(
                name,
                f"well-formed asks at {self.asks_per_s:g}/s to the fuzzed agent, "
                f"{self.baseline_asks:,} before and {self.fuzzed_asks:,} during the flood "
                f"({self.flood_s:.1f} s): p50 / {tail} before; during",
                self.agent.latencies(),
            ),
            Figure(
                name,
                f"the same asks to a bystander no bad frame reaches: p50 / {tail} before; during",
                self.bystander.latencies(),
            ),
            Figure(
                name,
                f"the fuzzed agent's {tail} during the flood over before",
                as_times(self.agent.slowdown),
            ),
            Figure(
                name,
                f"the machine's slowdown: the bystander's {tail} during the flood over before",
                as_times(self.bystander.slowdown),
            ),
            Figure(
                name,
                f"what the flood costs the agent beyond the machine: its {tail} during the "
                f"flood over the bystander's ({tail}: the highest percentile up to p99 "
                f"with {MIN_BEYOND} asks beyond it in each phase)",
                as_times(self.own_slowdown),
                f"<= {MAX_SLOWDOWN:g}x",
                self.own_slowdown is not None and self.own_slowdown <= MAX_SLOWDOWN,
            ),
            Figure(
                name,
                "well-formed asks failed (either agent, either phase)",
                f"{failed}{f' ({errors})' if errors else ''}",
                "0",
                failed == 0,
            ),
        ]


def tail_share(*counts: int) -> float:
    """Return the percentile (0..0.99) with `MIN_BEYOND` samples beyond it in each count.

    Whole percents, rounded down; 0.5 (the median) at least.
    """
    fewest = min(counts, default=0)
    if fewest <= MIN_BEYOND * 2:
        return 0.5
    return max(0.5, min(0.99, math.floor((1 - MIN_BEYOND / fewest) * 100) / 100))


def is_typed(error: dict[str, Any]) -> bool:
    """True when a wire error names a protocol or delivery error of raymesh's tree."""
    cls = error_class(str(error.get("code")))
    return cls is not None and issubclass(cls, ProtocolError | DeliveryError)


async def fuzz_agent(
    mesh: Mesh,
    *,
    frames: int,
    seed: int | None = None,
    every_s: float = 0.01,
    baseline_asks: int = 200,
    rounds: int = 1,
) -> FuzzFigures:
    """Send `frames` bad frames at a live agent while timing well-formed asks to it.

    With `rounds` above 1 the quiet phase and the flood alternate, `rounds` times each
    (the baseline asks and the frames split evenly between them), so that what else
    the machine runs meanwhile falls on both phases alike: a short flood's single
    quiet-then-flood pair is judged by whatever else happened in that second.
    """
    seed = time.time_ns() % 2**32 if seed is None else seed
    rng = random.Random(seed)
    name, bystander = unique("fuzzed"), unique("bystander")
    for agent in (name, bystander):
        await mesh.spawn(Echoer, name=agent)
    figures = FuzzFigures(frames=frames, seed=seed, asks_per_s=round(1 / every_s, 1))
    flooder = None
    try:
        host = await mesh.actor(name)
        incarnation = await host.ping.remote()
        flooder = _Flooder.remote()  # type: ignore[attr-defined]
        await flooder.ready.remote()
        for agent in (name, bystander):  # the edge's links are up
            await mesh.ask(agent, Say(text="warm"), timeout=10)
        to = (name, incarnation)
        made = make_frames(rng, to, frames)  # before any timing: it costs the driver
        figures.by_kind = dict(Counter(kind for kind, _ in made))
        # In the object store before any timing too: passed by value, the frames were
        # pickled in the driver's loop as the flood began, stalling the asks being timed
        # (a 15,000-frame flood's first 0.25 s had no ask sent, then a burst of them).
        size = -(-len(made) // rounds)
        parts = [ray.put([frame for _, frame in made[at : at + size]])
                 for at in range(0, len(made), size)]  # fmt: skip
        quiet = -(-baseline_asks // len(parts))
        before = await mesh.stats(name)
        calm, flooded = await _alternate(
            mesh, (name, bystander), flooder, host, parts, quiet=quiet, every_s=every_s,
            figures=figures,
        )  # fmt: skip
        figures.tail = tail_share(*(len(found) for found in (*calm, *flooded)))
        figures.agent = _phases(calm[0], flooded[0], figures.tail)
        figures.bystander = _phases(calm[1], flooded[1], figures.tail)
        if not figures.crashes:
            await _request_lane(host, rng, to, figures)
        if not figures.crashes:
            await _bomb_lane(host, rng, to, figures)
        figures.serving = await _still_serving(mesh, host, name, incarnation)
        figures.crashes += not figures.serving and not figures.crashes
        if figures.serving:
            after = await mesh.stats(name)
            figures.received = after.received - before.received
            figures.handled = after.handled - before.handled
            figures.dead_letters = after.dead_letters - before.dead_letters
    finally:
        for agent in (name, bystander):
            await mesh.stop(agent)
        if flooder is not None:
            ray.kill(flooder)
    return figures


#: Latencies (seconds) of the asks to each agent, in the order of `_ROLES`.
_Latencies = tuple[list[float], list[float]]
_ROLES = ("fuzzed", "bystander")


async def _alternate(
    mesh: Mesh,
    names: tuple[str, str],
    flooder: Any,
    host: Any,
    parts: list[Any],
    *,
    quiet: int,
    every_s: float,
    figures: FuzzFigures,
) -> tuple[_Latencies, _Latencies]:
    """Per part: `quiet` paced asks to each agent, then paced asks while the part floods.

    Returns the latencies before and during the floods; counts the fuzzed agent's asks.
    """
    calm: _Latencies = ([], [])
    flooded: _Latencies = ([], [])
    seq = 0
    for at, part in enumerate(parts):
        if at:  # what the last flood left (dead letters) is not the quiet phase's
            await asyncio.sleep(SETTLE_S)
        figures.baseline_asks += await _paced_asks(
            mesh, names, every_s, lambda n: n < quiet, into=calm, figures=figures, phase="before"
        )
        done = asyncio.Event()
        seq, asked = await asyncio.gather(
            _flood(flooder, host, part, seq=seq, figures=figures, flooded=done),
            _paced_asks(
                mesh, names, every_s, _until(done), into=flooded, figures=figures, phase="during"
            ),
        )
        figures.fuzzed_asks += asked
    return calm, flooded


def _until(event: asyncio.Event) -> Callable[[int], bool]:
    """Return a `more` for `_paced_asks`: until `event` is set."""
    return lambda _asks: not event.is_set()


async def _paced_asks(
    mesh: Mesh,
    names: tuple[str, str],
    every_s: float,
    more: Callable[[int], bool],
    *,
    into: _Latencies,
    figures: FuzzFigures,
    phase: str,
) -> int:
    """Ask each of `names` once every `every_s`, interleaved, while `more(asks to each)`.

    Adds the latencies `into` their agent's list and the failures to the figures' errors;
    returns how many asks went to each agent.
    """
    asks: list[tuple[int, asyncio.Task[float | str]]] = []
    next_at = time.monotonic()
    rounds = 0
    while more(rounds):
        for index, name in enumerate(names):
            asks.append((index, asyncio.create_task(_timed_ask(mesh, name))))
            next_at += every_s / len(names)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        rounds += 1
    for index, task in asks:
        outcome = await task
        if isinstance(outcome, float):
            into[index].append(outcome)
        else:
            key = f"{_ROLES[index]} {phase}: {outcome}"
            figures.ask_errors[key] = figures.ask_errors.get(key, 0) + 1
    return rounds


async def _timed_ask(mesh: Mesh, name: str) -> float | str:
    started = time.perf_counter()
    try:
        await mesh.ask(name, Say(text="well-formed"), timeout=10, expect=Say)
    except MeshError as exc:
        return error_name(exc)
    return time.perf_counter() - started


def _phases(before: list[float], during: list[float], tail: float) -> Phases:
    """Return the p50 and the `tail` percentile, in ms, of two phases' latencies (s)."""

    def ms(latencies: list[float], share: float) -> float | None:
        found = percentile(latencies, share)
        return None if found is None else found * 1000

    return Phases(ms(before, 0.5), ms(before, tail), ms(during, 0.5), ms(during, tail))


def _ratio(over: float | None, under: float | None) -> float | None:
    return None if over is None or not under else over / under


async def _flood(
    flooder: Any, host: Any, frames: Any, *, seq: int, figures: FuzzFigures, flooded: asyncio.Event
) -> int:
    """Have the peer deliver `frames` (an object ref) from call `seq` on; count refusals.

    Returns the next call's sequence number on the flood's link.
    """
    try:
        refused, typed, crashed, took_s, seq = await flooder.flood.remote(host, frames, seq)
        figures.flood_s += took_s
        figures.refused += refused
        figures.refused_typed += typed
        figures.crashes += crashed
    finally:
        flooded.set()
    return int(seq)


@ray.remote(num_cpus=0)
class _Flooder:
    """A hostile peer in a process of its own, started before any timing begins.

    The driver that times the well-formed asks then shares no CPU with the flood's
    sending and counting, and no worker starts while the asks are timed.
    """

    def ready(self) -> bool:
        return True

    def flood(
        self, host: Any, frames: list[bytes], first_seq: int
    ) -> tuple[int, int, bool, float, int]:
        """Deliver `frames` in batches on one link, one call at a time, as fast as taken.

        Returns the frames refused, those refused with a typed error, whether the host
        died under it, how long the flood took, and the link's next sequence number.
        """
        refused = typed = 0
        started = time.monotonic()
        seq = first_seq
        for start in range(0, len(frames), BATCH):
            batch = frames[start : start + BATCH]
            try:
                call = pack_call(f"{SENDER}#1", seq, batch)
                refusals, _ = open_result(ray.get(host.deliver.remote(call)))
            except RayError:  # nothing more to send
                return refused, typed, True, time.monotonic() - started, seq
            seq += 1
            for _index, error in refusals or []:
                refused += 1
                typed += is_typed(error)
        return refused, typed, False, time.monotonic() - started, seq


async def _request_lane(host: Any, rng: random.Random, to: Address, figures: FuzzFigures) -> None:
    """Send bad frames as `request` calls: each must still get an answer, an error typed."""
    codec = Codec()
    for seq in range(REQUEST_LANE_FRAMES):
        kind, frame = random_frame(rng, to)
        figures.by_kind[kind] = figures.by_kind.get(kind, 0) + 1
        figures.frames += 1
        try:
            reply = codec.decode(await host.request.remote(pack_call(f"{SENDER}#2", seq, frame)))
        except RayError:
            figures.crashes += 1
            return
        if reply.kind is Kind.ERROR:
            figures.refused += 1
            figures.refused_typed += is_typed(codec.decode_message(reply).model_dump())
        elif reply.kind is not Kind.REPLY:
            figures.refused += 1  # an answer that is neither a reply nor an error: untyped


async def _bomb_lane(host: Any, rng: random.Random, to: Address, figures: FuzzFigures) -> None:
    """Send each decode bomb in a call of its own; count how each ended.

    They are not part of the timed flood: each is refused only once a worker of the
    (serial) agent decodes it, off the event loop, and the asks queued behind it wait
    for that, as behind any message.
    """
    bombs = decode_bombs(rng, to)
    before = await host.stats.remote()
    at_door = 0
    for seq, (kind, frame) in enumerate(bombs):
        figures.by_kind[kind] = figures.by_kind.get(kind, 0) + 1
        figures.frames += 1
        try:
            call = pack_call(f"{SENDER}#3", seq, [frame])
            refusals, _ = open_result(await host.deliver.remote(call))
        except RayError:
            figures.crashes += 1
            return
        for _index, error in refusals or []:
            figures.refused += 1
            figures.refused_typed += is_typed(error)
            at_door += error.get("code") == "DecodeLimitError"

    async def all_ended() -> bool:  # each bomb taken in was handled or failed since
        now = await host.stats.remote()
        ended = now["handled"] + now["failed"] - before["handled"] - before["failed"]
        return bool(ended + at_door >= len(bombs))

    await eventually(all_ended, within=60)
    letters = await host.dead_letters.remote(len(bombs))
    after = await host.stats.remote()
    figures.bombs = len(bombs)
    figures.bombs_handled = after["handled"] - before["handled"]
    figures.bombs_refused_by_limit = at_door + sum(
        letter["reason"] == "schema" and letter["error_type"] == "DecodeLimitError"
        for letter in letters
    )


async def _still_serving(mesh: Mesh, host: Any, name: str, incarnation: str) -> bool:
    try:
        answer = await mesh.ask(name, Say(text="still here"), timeout=10, expect=Say)
        return answer.text == "still here" and await host.ping.remote() == incarnation
    except (MeshError, RayError):
        return False
