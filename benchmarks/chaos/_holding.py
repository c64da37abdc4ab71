"""The agents of the wrong-peer attack: an ask held open, and the id it goes by.

`Waiter` asks a `Holder`, which keeps the ask open until it is let go and tells
whoever asks it the open ask's message id: what an attacker who saw the ask on the
way would know, so that its forged replies name the right ask.
"""

from __future__ import annotations

import asyncio

from mesh.agent import Agent, Context, handler
from protocols import Message

__all__ = ["AskIs", "Held", "Hold", "HoldOn", "Holder", "LetGo", "Waiter", "WhatAsk"]


class Hold(Message, type="raymesh.chaos.hold/1"):
    """Answered with `Held` once the holder is let go."""


class Held(Message, type="raymesh.chaos.held/1"):
    text: str
    by: str


class HoldOn(Message, type="raymesh.chaos.hold_on/1"):
    """Ask `peer` a `Hold`, and answer with its reply."""

    peer: str


class WhatAsk(Message, type="raymesh.chaos.what_ask/1"):
    """Which ask is the holder holding?"""


class AskIs(Message, type="raymesh.chaos.ask_is/1"):
    id: str | None = None


class LetGo(Message, type="raymesh.chaos.let_go/1"):
    """Answer the held ask."""


class Holder(Agent):
    """Holds a `Hold` ask open until a `LetGo`; tells its id to a `WhatAsk`."""

    concurrency = 4

    def __init__(self) -> None:
        self._held: str | None = None
        self._go = asyncio.Event()

    @handler
    async def on_hold(self, msg: Hold, ctx: Context) -> Held:
        self._held = ctx.message_id
        await self._go.wait()
        return Held(text="the real answer", by=self.name)

    @handler
    async def on_what(self, msg: WhatAsk, ctx: Context) -> AskIs:
        return AskIs(id=self._held)

    @handler
    async def on_let_go(self, msg: LetGo, ctx: Context) -> None:
        self._go.set()


class Waiter(Agent):
    """Asks a holder and answers with what it replied."""

    @handler
    async def on_hold_on(self, msg: HoldOn, ctx: Context) -> Held:
        return await ctx.ask(msg.peer, Hold(), expect=Held, timeout=60)
