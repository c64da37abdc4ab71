"""The agents and messages the chaos scenarios run (importable by Ray workers)."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid

from pydantic import BaseModel

from benchmarks.chaos._canaries import ENV_KEY
from mesh.agent import Agent, Context, handler
from mesh.errors import (
    DiedBeforeRunError,
    MailboxFullError,
    MeshError,
    OutboxFullError,
    PeerNotFoundError,
)
from mesh.observability import get_logger
from protocols import Message

__all__ = [
    "Applied",
    "Apply",
    "AskLate",
    "Asked",
    "Asker",
    "Chatted",
    "Chatter",
    "Counted",
    "Echoer",
    "Expose",
    "Flood",
    "Flooded",
    "Freeze",
    "Item",
    "Leaky",
    "Ledger",
    "LedgerState",
    "Numbered",
    "Producer",
    "Progress",
    "Receiver",
    "Reset",
    "Say",
    "SendNumbered",
    "Sender",
    "Sequenced",
    "Shout",
    "Sink",
    "StopChatter",
    "Talker",
    "Work",
    "Worked",
    "Worker",
]


_log = get_logger()


class Work(Message, type="raymesh.chaos.work/1"):
    """Work `ms` milliseconds, after asking `peer` for its part first (if given)."""

    ms: float
    peer: str | None = None


class Worked(Message, type="raymesh.chaos.worked/1"):
    by: str


class Freeze(Message, type="raymesh.chaos.freeze/1"):
    """Block the event loop for `seconds`: a handler that calls blocking code."""

    seconds: float


class Worker(Agent):
    """A member of the chaos conversation: works, asks a peer, or blocks its loop."""

    concurrency = 64

    @handler
    async def on_work(self, msg: Work, ctx: Context) -> Worked:
        if msg.peer is not None:
            await ctx.ask(msg.peer, Work(ms=msg.ms), expect=Worked)
        await asyncio.sleep(msg.ms / 1000)
        return Worked(by=ctx.agent)

    @handler
    async def on_freeze(self, msg: Freeze, ctx: Context) -> Worked:
        time.sleep(msg.seconds)  # noqa: ASYNC251 -- the fault under test
        return Worked(by=ctx.agent)


class Numbered(Message, type="raymesh.chaos.numbered/1"):
    seq: int


class Counted(Message, type="raymesh.chaos.counted/1"):
    """Which incarnation of the receiver handled a message, and as its how-manieth."""

    life: str
    position: int


class Receiver(Agent):
    """Counts what it handles, one message at a time, in arrival order."""

    def __init__(self) -> None:
        self.life = uuid.uuid4().hex[:8]
        self.handled = 0

    @handler
    async def on_numbered(self, msg: Numbered, ctx: Context) -> Counted:
        self.handled += 1
        return Counted(life=self.life, position=self.handled)


class SendNumbered(Message, type="raymesh.chaos.send_numbered/1"):
    """Ask `peer` messages 0..count-1 in order, `window` at a time."""

    peer: str
    count: int
    window: int
    timeout: float


class Sequenced(Message, type="raymesh.chaos.sequenced/1"):
    """Per message: the receiver's life and position, or the error's type (life empty)."""

    lives: list[str]
    positions: list[int]
    errors: list[str]


class Progress(Message, type="raymesh.chaos.progress/1"):
    done: int = 0


class Sender(Agent):
    """Sends sequenced asks to one peer and reports how each ended."""

    concurrency = 2

    def __init__(self) -> None:
        self.done = 0

    @handler
    async def on_send(self, msg: SendNumbered, ctx: Context) -> Sequenced:
        lives, positions, errors = [""] * msg.count, [0] * msg.count, [""] * msg.count
        sequence = iter(range(msg.count))

        async def lane() -> None:
            for seq in sequence:
                try:
                    got = await ctx.ask(msg.peer, Numbered(seq=seq), timeout=msg.timeout,
                                        expect=Counted)  # fmt: skip
                    lives[seq], positions[seq] = got.life, got.position
                except MeshError as exc:
                    errors[seq] = type(exc).__name__
                    if isinstance(exc, DiedBeforeRunError | PeerNotFoundError):
                        await asyncio.sleep(0.5)  # the peer is down: give its successor time
                self.done += 1

        await asyncio.gather(*(lane() for _ in range(msg.window)))
        return Sequenced(lives=lives, positions=positions, errors=errors)

    @handler
    async def on_progress(self, msg: Progress, ctx: Context) -> Progress:
        return Progress(done=self.done)


class Shout(Message, type="raymesh.chaos.shout/1"):
    pass


class Chatter(Message, type="raymesh.chaos.chatter/1"):
    """Ask `peer` over and over, `window` at a time, until told to stop."""

    peer: str
    window: int


class StopChatter(Message, type="raymesh.chaos.stop_chatter/1"):
    pass


class Chatted(Message, type="raymesh.chaos.chatted/1"):
    ok: int
    failed: dict[str, int]


class Talker(Agent):
    """Talks to a peer directly while the registry comes and goes."""

    concurrency = 64

    def __init__(self) -> None:
        self.ok = 0
        self.stopping = asyncio.Event()

    @handler
    async def on_shout(self, msg: Shout, ctx: Context) -> Shout:
        await asyncio.sleep(random.uniform(0, 0.002))
        return msg

    @handler
    async def on_chatter(self, msg: Chatter, ctx: Context) -> Chatted:
        failed: dict[str, int] = {}

        async def lane() -> None:
            while not self.stopping.is_set():
                try:
                    await ctx.ask(msg.peer, Shout(), timeout=5)
                    self.ok += 1
                except MeshError as exc:
                    failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1

        await asyncio.gather(*(lane() for _ in range(msg.window)))
        return Chatted(ok=self.ok, failed=failed)

    @handler
    async def on_progress(self, msg: Progress, ctx: Context) -> Progress:
        return Progress(done=self.ok)

    @handler
    async def on_stop_chatter(self, msg: StopChatter, ctx: Context) -> None:
        self.stopping.set()


class Say(Message, type="raymesh.chaos.say/1"):
    text: str = ""


class Reset(Message, type="raymesh.chaos.reset/1"):
    """Forget what was said: a command a team may keep to itself (its access rules)."""


class Echoer(Agent):
    """Says back what it is told, one message at a time: the target of bad frames."""

    def __init__(self) -> None:
        self.said = 0

    @handler
    async def on_say(self, msg: Say, ctx: Context) -> Say:
        self.said += 1
        return msg

    @handler
    async def on_reset(self, msg: Reset, ctx: Context) -> None:
        self.said = 0


class AskLate(Message, type="raymesh.chaos.ask_late/1"):
    """Ask `peer` to block for `hold_s`, `count` times, each ask with a shorter `timeout`."""

    peer: str
    count: int
    hold_s: float
    timeout: float


class Asked(Message, type="raymesh.chaos.asked/1"):
    """How the asks of an `AskLate` ended: error type name (or "reply") to count."""

    outcomes: dict[str, int]


class Asker(Agent):
    """Asks a slow peer with deadlines it cannot meet, so that every reply comes late."""

    @handler
    async def on_ask_late(self, msg: AskLate, ctx: Context) -> Asked:
        outcomes: dict[str, int] = {}
        for _ in range(msg.count):
            try:
                await ctx.ask(msg.peer, Freeze(seconds=msg.hold_s), timeout=msg.timeout)
                outcome = "reply"
            except MeshError as exc:
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            # Answered only once the peer's loop is free again, so after the late reply
            # left: the next ask finds the peer idle instead of expiring in its mailbox.
            await ctx.ask(msg.peer, Work(ms=0), timeout=10 + msg.hold_s, expect=Worked)
        return Asked(outcomes=outcomes)


class Apply(Message, type="raymesh.chaos.apply/1"):
    """Apply the effect numbered `key`, after `ms` milliseconds of work."""

    key: int
    ms: float


class Applied(Message, type="raymesh.chaos.applied/1"):
    key: int


class LedgerState(BaseModel):
    """The effects applied, in the order applied: a key found twice was applied twice."""

    applied: list[int] = []


class Ledger(Agent):
    """Applies effects to its durable state, which is snapshotted after every message."""

    State = LedgerState
    state: LedgerState
    snapshot_every = 1
    concurrency = 16

    @handler
    async def on_apply(self, msg: Apply, ctx: Context) -> Applied:
        await asyncio.sleep(msg.ms / 1000)
        # Invariant: the effect is the handler's last step, with no await after it, so a
        # snapshot taken when a concurrent handler ends never holds this effect without
        # this message's id (the host records the id before its next await).
        self.state.applied.append(msg.key)
        return Applied(key=msg.key)


class Item(Message, type="raymesh.chaos.item/1"):
    """One unit of a flood; `until` (epoch seconds) is when the overload ends."""

    data: bytes
    until: float


class Sink(Agent):
    """Takes `delay_s` per item while the overload lasts, and no time after it.

    The backlog left at the end then drains at once, so that an ask to the sink
    afterwards tells a deadlock from a long queue.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.consumed = 0

    @handler
    async def on_item(self, msg: Item, ctx: Context) -> None:
        if time.time() < msg.until:
            await asyncio.sleep(self.delay_s)
            self.consumed += 1

    @handler
    async def on_progress(self, msg: Progress, ctx: Context) -> Progress:
        return Progress(done=self.consumed)


class Flood(Message, type="raymesh.chaos.flood/1"):
    """Tell `peer` `per_s` items a second for `seconds`, without waiting for one to land."""

    peer: str
    per_s: int
    seconds: float
    payload_bytes: int


class Flooded(Message, type="raymesh.chaos.flooded/1"):
    """How the flood's sends ended; `unsettled` were still held when it stopped."""

    offered: int
    accepted: int
    mailbox_full: int
    outbox_full: int
    errors: dict[str, int]
    untyped: int
    unsettled: int


class Producer(Agent):
    """Offers tells at a fixed rate, each in its own task, and counts how they end."""

    def __init__(self) -> None:
        self.offered = 0

    @handler
    async def on_flood(self, msg: Flood, ctx: Context) -> Flooded:
        counts = {"accepted": 0, "mailbox_full": 0, "outbox_full": 0, "untyped": 0}
        errors: dict[str, int] = {}
        tasks: set[asyncio.Task[None]] = set()
        until = time.time() + msg.seconds

        async def offer(item: Item) -> None:
            try:
                await ctx.tell(msg.peer, item)
                counts["accepted"] += 1
            except OutboxFullError:
                counts["outbox_full"] += 1
            except MailboxFullError:
                counts["mailbox_full"] += 1
            except MeshError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            except Exception:
                counts["untyped"] += 1

        tick = 0.01
        start = time.monotonic()
        while (now := time.monotonic()) - start < msg.seconds:
            due = round((now - start + tick) * msg.per_s)
            while self.offered < due:
                task = asyncio.create_task(offer(Item(data=b"x" * msg.payload_bytes, until=until)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.offered += 1
            await asyncio.sleep(tick)
        # Not `tasks` as it stands: a send that ended in this loop turn is counted already,
        # and its task leaves the set only in the next turn.
        held = [task for task in tasks if not task.done()]
        for task in held:
            task.cancel()  # the frames stay queued; only the waiting for them ends
        unsettled = len(held)
        return Flooded(offered=self.offered, errors=errors, unsettled=unsettled, **counts)

    @handler
    async def on_progress(self, msg: Progress, ctx: Context) -> Progress:
        return Progress(done=self.offered)


class Expose(Message, type="raymesh.chaos.expose/1"):
    """Log `key`, then fail with it (and the agent's environment key) in the error's text."""

    key: str


class Leaky(Agent):
    """Puts every key it is given where a careless handler would: a log line and an error.

    Args:
        env_key: A canary planted in this agent's process as ``RAYMESH_CANARY_API_KEY``.
    """

    def __init__(self, env_key: str | None = None) -> None:
        if env_key is not None:
            os.environ[ENV_KEY] = env_key

    @handler
    async def on_expose(self, msg: Expose, ctx: Context) -> Expose:
        mine = os.environ.get(ENV_KEY, "")
        _log.error("calling the backend", key=msg.key, env_key=mine)
        raise RuntimeError(f"backend refused key {msg.key} (and {ENV_KEY}={mine})")
