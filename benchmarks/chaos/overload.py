"""Overload: a producer at 10x its consumer's speed; memory bounded, no deadlock, typed refusals.

The consumer (`Sink`) takes 10 ms a message (100 a second); the producer offers 1,000
tells a second of 1 KiB each, every one in its own task, without waiting for one to
land before sending the next. Under either mailbox policy the overflow must come back
as typed backpressure, and nothing else:

- ``error``: the consumer refuses what its full mailbox cannot hold (``MailboxFullError``);
- ``wait``: the consumer holds the producer's calls until there is room, the producer's
  outbox fills, and further sends are refused at the sender (``OutboxFullError``).

**The memory bound.** The runtime holds at most ``mailbox_size + max_outbox +
max_inflight * max_batch`` messages per producer-consumer pair (README, Reliability,
"Backpressure"). Each held message costs its frame (measured: the encoded envelope of
one item) plus, for a send held at the sender, its waiting future and the caller's
task: `HELD_SEND_BYTES` (about 7 KB was measured per held 1 KiB send; 8 KiB is taken).
Memory that is not held messages (the interpreter's arenas, Ray's buffers, garbage not
yet collected) gets a fixed `ALLOWANCE_BYTES`. So the bound on the growth of both
processes together (peak RSS minus the first sample, each) is::

    held * (frame + HELD_SEND_BYTES) + ALLOWANCE_BYTES

It is set by the configuration, not by how long the overload lasts. RSS is read from
/proc twice a second (Linux, the agents on this node).

**No deadlock.** Once the overload ends the consumer takes the backlog without delay
(an item carries when the overload ends), and both agents must answer an ask within
`ANSWER_WITHIN_S`: a long queue drains; a deadlock would not.

Each policy runs on a mesh of its own (a namespace of the live mesh's Ray), since the
mailbox policy is a setting of the whole mesh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from benchmarks.chaos._agents import Flood, Flooded, Item, Producer, Progress, Sink
from benchmarks.chaos._figure import Figure, as_s
from benchmarks.chaos._support import eventually, unique
from mesh.config import MeshConfig
from mesh.edge import Mesh
from mesh.errors import ConfigError, MailboxFullError
from protocols import Envelope, Kind, new_trace_id

__all__ = ["ALLOWANCE_BYTES", "ANSWER_WITHIN_S", "HELD_SEND_BYTES", "OverloadFigures", "overload"]

Policy = Literal["error", "wait"]

_MB = 1024 * 1024
#: What a message held at the sender costs beyond its frame: its future and its task.
HELD_SEND_BYTES = 8 * 1024
#: Growth that is not held messages: arenas, Ray's buffers, garbage not yet collected.
ALLOWANCE_BYTES = 64 * _MB
#: How soon after the overload both agents must answer an ask.
ANSWER_WITHIN_S = 60.0
#: Seconds between RSS samples.
SAMPLE_EVERY_S = 0.5


@dataclass
class OverloadFigures:
    """One mailbox policy's run: rates, how the sends ended, memory, and liveness after."""

    policy: str
    seconds: float
    consumer_per_s: float
    offered: int = 0
    consumed: int = 0
    accepted: int = 0
    mailbox_full: int = 0
    outbox_full: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    untyped: int = 0
    unsettled: int = 0
    held: int = 0
    frame_bytes: int = 0
    producer_rss_mb: list[float] = field(default_factory=list)
    consumer_rss_mb: list[float] = field(default_factory=list)
    answered_s: float | None = None

    @property
    def backpressure(self) -> int:
        """Sends refused with typed backpressure (MailboxFullError, OutboxFullError)."""
        return self.mailbox_full + self.outbox_full

    @property
    def bound_mb(self) -> float:
        """The most the two processes may grow by: held messages and the allowance."""
        return (self.held * (self.frame_bytes + HELD_SEND_BYTES) + ALLOWANCE_BYTES) / _MB

    @property
    def growth_mb(self) -> float:
        """Peak minus the first sample, both processes together."""
        return sum(max(rss) - rss[0] for rss in (self.producer_rss_mb, self.consumer_rss_mb))

    def lines(self) -> list[Figure]:
        """Return this policy's lines of the chaos table."""
        name = (
            f'overload, mailbox_policy "{self.policy}": {self.offered / self.seconds:,.0f} '
            f"tells/s to a consumer of {self.consumer_per_s:,.0f}/s, {self.seconds:g} s"
        )
        other = sum(self.errors.values())
        detail = ", ".join(f"{e} {n}" for e, n in sorted(self.errors.items()))
        producer, consumer = self.producer_rss_mb, self.consumer_rss_mb
        return [
            Figure(
                name,
                "offered / consumed per second",
                f"{self.offered / self.seconds:,.0f} / {self.consumed / self.seconds:,.0f}",
            ),
            Figure(name, "accepted", f"{self.accepted:,} of {self.offered:,}"),
            Figure(name, "refused: MailboxFullError", f"{self.mailbox_full:,}"),
            Figure(name, "refused: OutboxFullError", f"{self.outbox_full:,}"),
            Figure(name, "still held when the overload ended", f"{self.unsettled:,}"),
            Figure(
                name,
                "overflow refused as typed backpressure",
                f"{self.backpressure:,}",
                "> 0",
                self.backpressure > 0,
            ),
            Figure(
                name,
                "other errors",
                f"{other}{f' ({detail})' if detail else ''}",
                "0",
                other == 0,
            ),
            Figure(name, "untyped errors", str(self.untyped), "0", self.untyped == 0),
            Figure(
                name, "producer RSS start / peak", f"{producer[0]:.0f} / {max(producer):.0f} MB"
            ),
            Figure(
                name, "consumer RSS start / peak", f"{consumer[0]:.0f} / {max(consumer):.0f} MB"
            ),
            Figure(
                name,
                f"growth of both vs the bound ({self.held:,} held x "
                f"({self.frame_bytes:,} B + {HELD_SEND_BYTES // 1024} KiB) + "
                f"{ALLOWANCE_BYTES // _MB} MB)",
                f"{self.growth_mb:.0f} MB",
                f"<= {self.bound_mb:.0f} MB",
                self.growth_mb <= self.bound_mb,
            ),
            Figure(
                name,
                "both answer an ask afterwards (no deadlock)",
                as_s(self.answered_s),
                f"<= {ANSWER_WITHIN_S:g} s",
                self.answered_s is not None,
            ),
        ]


async def overload(
    mesh: Mesh,
    *,
    seconds: float,
    policies: Sequence[Policy] = ("error", "wait"),
    factor: int = 10,
    consumer_per_s: int = 100,
    payload_bytes: int = 1024,
    mailbox_size: int | None = None,
    max_outbox: int | None = None,
) -> list[OverloadFigures]:
    """Flood a consumer with `factor` times what it takes, for `seconds`, under each policy.

    `mailbox_size` and `max_outbox` override the live mesh's settings (a smaller bound
    is reached sooner: the CI form uses one).
    """
    return [
        await _one(
            mesh,
            policy,
            seconds=seconds,
            per_s=factor * consumer_per_s,
            consumer_per_s=consumer_per_s,
            payload_bytes=payload_bytes,
            limits={"mailbox_size": mailbox_size, "max_outbox": max_outbox},
        )
        for policy in policies
    ]


async def _one(
    mesh: Mesh,
    policy: Policy,
    *,
    seconds: float,
    per_s: int,
    consumer_per_s: int,
    payload_bytes: int,
    limits: dict[str, int | None],
) -> OverloadFigures:
    config = mesh.config.model_copy(update={
        "namespace": f"{mesh.config.namespace}-overload-{policy}",
        "mailbox_policy": policy,
        "ask_timeout_s": seconds + ANSWER_WITHIN_S,
        **{key: value for key, value in limits.items() if value is not None},
    })  # fmt: skip
    figures = OverloadFigures(policy=policy, seconds=seconds, consumer_per_s=consumer_per_s)
    figures.held = config.mailbox_size + config.max_outbox + config.max_inflight * config.max_batch
    figures.frame_bytes = _frame_bytes(config, payload_bytes)
    flooding = Mesh.local(config=config)  # joins the live mesh's Ray
    try:
        sink = await flooding.spawn(Sink, name=unique("sink"), delay_s=1 / consumer_per_s)
        producer = await flooding.spawn(Producer, name=unique("producer"))
        _sample(figures, producer.pid, sink.pid)  # the first, and a failure to read, at once
        sampling = asyncio.create_task(_keep_sampling(figures, producer.pid, sink.pid))
        try:
            flooded = await flooding.ask(producer.name, Flood(
                peer=sink.name, per_s=per_s, seconds=seconds, payload_bytes=payload_bytes,
            ), expect=Flooded)  # fmt: skip
            figures.answered_s = await eventually(
                lambda: _both_answer(flooding, [producer.name, sink.name]),
                within=ANSWER_WITHIN_S,
            )
            figures.consumed = (await flooding.ask(sink.name, Progress(), expect=Progress)).done
        finally:
            sampling.cancel()
    finally:
        await flooding.shutdown()
    figures.offered, figures.accepted = flooded.offered, flooded.accepted
    figures.mailbox_full, figures.outbox_full = flooded.mailbox_full, flooded.outbox_full
    figures.errors, figures.untyped = flooded.errors, flooded.untyped
    figures.unsettled = flooded.unsettled
    return figures


async def _both_answer(mesh: Mesh, names: list[str]) -> bool:
    try:
        for name in names:
            await mesh.ask(name, Progress(), timeout=ANSWER_WITHIN_S, expect=Progress)
    except MailboxFullError:
        return False  # refused at once under "error": the backlog is still draining
    return True


def _sample(figures: OverloadFigures, producer_pid: int, consumer_pid: int) -> None:
    figures.producer_rss_mb.append(_rss_mb(producer_pid))
    figures.consumer_rss_mb.append(_rss_mb(consumer_pid))


async def _keep_sampling(figures: OverloadFigures, producer_pid: int, consumer_pid: int) -> None:
    while True:
        await asyncio.sleep(SAMPLE_EVERY_S)
        _sample(figures, producer_pid, consumer_pid)


def _frame_bytes(config: MeshConfig, payload_bytes: int) -> int:
    """Return the size of one item's frame as the producer sends it (signed if it signs)."""
    codec = config.codec()
    item = Item(data=b"x" * payload_bytes, until=time.time())
    env = Envelope(kind=Kind.TELL, type=item.type_tag or "", sender="producer",
                   recipient="sink", payload=codec.encode_message(item),
                   trace_id=new_trace_id())  # fmt: skip
    return len(codec.encode(env))


def _rss_mb(pid: int) -> float:
    """Return the resident memory of process `pid` in MB.

    Raises:
        ConfigError: No /proc entry for it (not Linux, or not on this node).
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    raise ConfigError(
        f"cannot read the memory of process {pid}",
        hint="the overload scenario reads /proc: run it on Linux, with a local mesh",
    )
