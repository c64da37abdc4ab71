"""The agents and messages the chaos scenarios run (importable by Ray workers)."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid

from mesh.agent import Agent, Context, handler
from mesh.chaos._canaries import ENV_KEY
from mesh.errors import DiedBeforeRunError, MeshError, PeerNotFoundError
from mesh.tracing import get_logger
from protocols import Message

__all__ = [
    "Chatted",
    "Chatter",
    "Counted",
    "Expose",
    "Freeze",
    "Leaky",
    "Numbered",
    "Progress",
    "Receiver",
    "SendNumbered",
    "Sender",
    "Sequenced",
    "Shout",
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
