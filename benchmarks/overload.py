"""Overload: a producer offering 10x what its consumer can take, for 30 s; memory stays bounded.

The consumer takes 10 ms a message (100 a second); the producer offers 1,000 tells a
second of 1 KiB each, without waiting for one before sending the next. Under either
mailbox policy the overflow must come back as typed backpressure and both processes'
memory must stay under a bound set by the configuration, not by the run's length:

- ``error``: the consumer refuses what its full mailbox cannot hold (MailboxFullError);
- ``wait``: the consumer holds the producer's calls until there is room, the producer's
  outbox fills, and further sends are refused at the sender (OutboxFullError).

The runtime holds at most ``mailbox_size + max_outbox + max_inflight * max_batch``
messages per producer-consumer pair (``bound_mb`` is their frames' size); each held
send also costs the sender its waiting future and the caller's own task, which the RSS
figures include. RSS is sampled twice a second from /proc (Linux).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from mesh import Agent, Context, MailboxFullError, Mesh, MeshConfig, OutboxFullError, handler
from protocols import Message

__all__ = ["Outcome", "run"]

_MB = 1024 * 1024


class Item(Message, type="bench.overload.item/1"):
    data: bytes


class Flood(Message, type="bench.overload.flood/1"):
    peer: str
    per_s: int
    seconds: float
    payload_bytes: int


class Flooded(Message, type="bench.overload.flooded/1"):
    offered: int
    accepted: int
    mailbox_full: int
    outbox_full: int
    other_errors: int
    unsettled: int


class Sink(Agent):
    """Takes `delay_s` per item."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    @handler
    async def on_item(self, msg: Item, ctx: Context) -> None:
        await asyncio.sleep(self.delay_s)


class Producer(Agent):
    """Offers tells at a fixed rate, each in its own task, counting how they end."""

    @handler
    async def on_flood(self, msg: Flood, ctx: Context) -> Flooded:
        counts = {"accepted": 0, "mailbox_full": 0, "outbox_full": 0, "other_errors": 0}
        tasks: set[asyncio.Task[None]] = set()

        async def offer(item: Item) -> None:
            try:
                await ctx.tell(msg.peer, item)
                counts["accepted"] += 1
            except OutboxFullError:
                counts["outbox_full"] += 1
            except MailboxFullError:
                counts["mailbox_full"] += 1
            except Exception:
                counts["other_errors"] += 1

        tick = 0.01
        per_tick = max(1, round(msg.per_s * tick))
        offered = 0
        start = time.monotonic()
        while (now := time.monotonic()) - start < msg.seconds:
            due = round((now - start) * msg.per_s) + per_tick
            while offered < due:
                task = asyncio.create_task(offer(Item(data=b"x" * msg.payload_bytes)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                offered += 1
            await asyncio.sleep(tick)
        unsettled = len(tasks)
        for task in list(tasks):
            task.cancel()
        return Flooded(offered=offered, unsettled=unsettled, **counts)


@dataclass
class Outcome:
    """One policy's run."""

    policy: str
    seconds: float
    offered_per_s: float
    consumer_per_s: float
    offered: int
    accepted: int
    mailbox_full: int
    outbox_full: int
    other_errors: int
    unsettled: int
    bound_mb: float  # the frames of the most messages the runtime holds for this pair
    producer_rss_mb: list[float] = field(default_factory=list)
    consumer_rss_mb: list[float] = field(default_factory=list)

    @property
    def producer_peak_mb(self) -> float:
        """Largest producer RSS sampled."""
        return max(self.producer_rss_mb)

    @property
    def consumer_peak_mb(self) -> float:
        """Largest consumer RSS sampled."""
        return max(self.consumer_rss_mb)

    @property
    def growth_mb(self) -> float:
        """Peak minus the first sample, both processes together."""
        return (
            self.producer_peak_mb
            - self.producer_rss_mb[0]
            + self.consumer_peak_mb
            - self.consumer_rss_mb[0]
        )


async def _one(policy: str, *, seconds: float, per_s: int, delay_s: float) -> Outcome:
    payload = 1024
    config = MeshConfig(namespace=f"raymesh-overload-{policy}", mailbox_policy=policy,
                        ask_timeout_s=seconds + 60)  # fmt: skip
    mesh = Mesh.local(config=config)  # joins the runner's Ray
    try:
        sink = await mesh.spawn(Sink, name="sink", delay_s=delay_s)
        producer = await mesh.spawn(Producer, name="producer")
        pids = {"producer": producer.pid, "consumer": sink.pid}
        samples: dict[str, list[float]] = {"producer": [], "consumer": []}

        def sample() -> None:
            for role, pid in pids.items():
                samples[role].append(_rss_mb(pid))

        sample()
        flood = asyncio.create_task(mesh.ask("producer", Flood(
            peer="sink", per_s=per_s, seconds=seconds, payload_bytes=payload)))  # fmt: skip
        while not flood.done():
            await asyncio.wait([flood], timeout=0.5)
            sample()
        result = flood.result()
        assert isinstance(result, Flooded)
    finally:
        await mesh.shutdown()
    frame = payload + 300  # the 1 KiB payload, its header and msgpack framing
    held = config.mailbox_size + config.max_outbox + config.max_inflight * config.max_batch
    return Outcome(
        policy=policy,
        seconds=seconds,
        offered_per_s=result.offered / seconds,
        consumer_per_s=1 / delay_s,
        offered=result.offered,
        accepted=result.accepted,
        mailbox_full=result.mailbox_full,
        outbox_full=result.outbox_full,
        other_errors=result.other_errors,
        unsettled=result.unsettled,
        bound_mb=held * frame / _MB,
        producer_rss_mb=samples["producer"],
        consumer_rss_mb=samples["consumer"],
    )


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for process {pid}")


async def run(*, seconds: float = 30.0, per_s: int = 1000, delay_s: float = 0.01) -> list[Outcome]:
    """Run the overload for each mailbox policy; the runner's Ray must be started."""
    return [
        await _one(policy, seconds=seconds, per_s=per_s, delay_s=delay_s)
        for policy in ("error", "wait")
    ]
