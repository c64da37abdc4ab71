"""Agents of the streaming tests, importable by module name in Ray's workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from mesh import Agent, Context, handler
from protocols import Message


class Say(Message, type="test.stream.say/1"):
    """Emit `count` words, `pause_s` apart, then answer; or stream through `via` first."""

    count: int = 3
    pause_s: float = 0.0
    via: list[str] = Field(default_factory=list)


class Said(Message, type="test.stream.said/1"):
    text: str
    agent: str = ""


class Flood(Message, type="test.stream.flood/1"):
    count: int


class HowFar(Message, type="test.stream.how_far/1"):
    pass


class Progress(Message, type="test.stream.progress/1"):
    produced: int
    cancelled: bool
    running: bool


class Talker(Agent):
    """Emits words with `ctx.emit`; forwards a worker's stream when asked `via` it."""

    @handler
    async def on_say(self, msg: Say, ctx: Context) -> Said:
        if msg.via:
            await ctx.emit(text="<")
            inner = ctx.stream(msg.via[0], Say(count=msg.count, pause_s=msg.pause_s,
                                               via=msg.via[1:]), forward=True)  # fmt: skip
            reply = await inner.result()
            assert isinstance(reply, Said)
            await ctx.emit(text=">")
            return Said(text=f"[{reply.text}]", agent=self.name)
        words = []
        for i in range(msg.count):
            if msg.pause_s:
                await asyncio.sleep(msg.pause_s)
            words.append(f"w{i}")
            await ctx.emit(text=f"w{i} ", data={"i": i} if i == 0 else None)
        return Said(text=" ".join(words), agent=self.name)


class Writer(Agent):
    """A generator handler: yields text and data chunks, then its reply."""

    @handler
    async def on_say(self, msg: Say, ctx: Context) -> AsyncIterator[Any]:
        for i in range(msg.count):
            yield f"g{i} "
        yield {"done": msg.count}
        yield Said(text="written", agent=self.name)


class Quiet(Agent):
    """Never emits: streaming it gives no chunks and the reply."""

    @handler
    async def on_say(self, msg: Say, ctx: Context) -> Said:
        await ctx.emit(text="ignored")  # a no-op unless streamed: it emits nothing
        return Said(text=f"quiet {ctx.streaming}", agent=self.name)


class Producer(Agent):
    """Emits as fast as the stream lets it, counting how far it got; reports it on HowFar."""

    concurrency = 4

    def __init__(self) -> None:
        self.produced = 0
        self.cancelled = False
        self.running = False

    @handler
    async def on_flood(self, msg: Flood, ctx: Context) -> Said:
        self.produced, self.cancelled, self.running = 0, False, True
        try:
            for i in range(msg.count):
                await ctx.emit(text=f"{i}")
                self.produced += 1
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.running = False
        return Said(text=str(self.produced), agent=self.name)

    @handler
    async def on_how_far(self, msg: HowFar, ctx: Context) -> Progress:
        return Progress(produced=self.produced, cancelled=self.cancelled, running=self.running)
