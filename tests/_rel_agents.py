"""Agents for the reliability tests: dead letters, dedup, durable state, backpressure."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from mesh import Agent, Context, handler
from protocols import Message


class Hold(Message, type="test.rel.hold/1"):
    """Block the event loop (not just the handler) for `seconds`."""

    seconds: float


class Count(Message, type="test.rel.count/1"):
    """Add one to the counter; reply with the new value."""


class Counted(Message, type="test.rel.counted/1"):
    value: int
    incarnation_handled: int


class Work(Message, type="test.rel.work/1"):
    """A tell that takes `seconds` to handle."""

    seconds: float = 0.0
    seq: int = 0


class GetSeqs(Message, type="test.rel.get_seqs/1"):
    pass


class Seqs(Message, type="test.rel.seqs/1"):
    seqs: list[int]


class Holder(Agent):
    """Blocks its loop on request, and counts the messages it handled."""

    def __init__(self) -> None:
        self.handled = 0

    @handler
    async def on_hold(self, msg: Hold, ctx: Context) -> Counted:
        time.sleep(msg.seconds)  # noqa: ASYNC251 -- the fault under test
        self.handled += 1
        return Counted(value=self.handled, incarnation_handled=self.handled)

    @handler
    async def on_count(self, msg: Count, ctx: Context) -> Counted:
        self.handled += 1
        return Counted(value=self.handled, incarnation_handled=self.handled)


class CounterState(BaseModel):
    value: int = 0


class Counter(Agent):
    """A counter whose value survives restarts: its state is snapshotted after each message."""

    State = CounterState
    state: CounterState

    def __init__(self) -> None:
        self.handled = 0

    @handler
    async def on_count(self, msg: Count, ctx: Context) -> Counted:
        self.state.value += 1
        self.handled += 1
        return Counted(value=self.state.value, incarnation_handled=self.handled)


class Slow(Agent):
    """A consumer that takes `Work.seconds` per message and records their order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    @handler
    async def on_work(self, msg: Work, ctx: Context) -> None:
        await asyncio.sleep(msg.seconds)
        self.seqs.append(msg.seq)

    @handler
    async def on_get_seqs(self, msg: GetSeqs, ctx: Context) -> Seqs:
        return Seqs(seqs=self.seqs)
