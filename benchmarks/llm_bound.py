"""LLM-bound conversations: a small team against a loopback model with a fixed latency.

Each conversation asks the lead, which asks a worker for a draft (one model call) and
then answers with its own model (a second call), through the real openai SDK against a
loopback OpenAI-compatible server that answers every request after a fixed delay. The
ideal is C conversations / (2 x latency) per second; the ratio shows what the runtime
loses on top of the model (scheduling, messaging, SDK, HTTP).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from actors import Completion, LLMAgent, Prompt, Reasoner
from actors.loopback import LoopbackLLMServer, Step
from mesh import Context, Mesh, handler
from protocols import Message

MODEL = "bench-model"


class Draft(Message, type="bench.draft/1"):
    worker: str
    text: str


class Lead(LLMAgent):
    """Asks a worker for a draft, then answers with its own model."""

    @handler
    async def on_draft(self, msg: Draft, ctx: Context) -> Completion:
        draft = await ctx.ask(msg.worker, Prompt(text=msg.text), expect=Completion)
        return await self.answer(Prompt(text=msg.text, context=[draft.text]), ctx)


@dataclass(frozen=True)
class Throughput:
    """Conversations per second at one concurrency, next to the ideal."""

    concurrency: int
    conversations: int
    latency_s: float
    per_s: float

    @property
    def ideal_per_s(self) -> float:
        """What a runtime that added nothing to two model calls would reach."""
        return self.concurrency / (2 * self.latency_s)

    @property
    def ratio(self) -> float:
        """Measured over ideal."""
        return self.per_s / self.ideal_per_s


async def run(
    mesh: Mesh, *, latency_s: float = 0.05, concurrencies: tuple[int, ...] = (1, 8, 32),
    rounds: int = 4,
) -> list[Throughput]:  # fmt: skip
    """Measure conversations per second at each concurrency."""
    rows = []
    with LoopbackLLMServer() as server:
        server.always(MODEL, Step(text="fine", delay_s=latency_s, usage=(40, 10)))
        suffix = str(time.time_ns())[-9:]
        worker, lead = f"llm-worker-{suffix}", f"llm-lead-{suffix}"
        most = max(concurrencies)
        for cls, name in ((Reasoner, worker), (Lead, lead)):
            await mesh.spawn(cls, name=name, model=f"openai:{MODEL}", concurrency=most,
                             base_url=server.openai_url, api_key="loopback")  # fmt: skip
        try:
            for concurrency in concurrencies:
                total = concurrency * rounds
                gate = asyncio.Semaphore(concurrency)

                async def one(i: int, gate: asyncio.Semaphore) -> None:
                    async with gate:
                        draft = Draft(worker=worker, text=f"conversation {i}")
                        await mesh.ask(lead, draft, timeout=60, expect=Completion)

                await one(-1, gate)  # warm the SDK clients and links
                start = time.perf_counter()
                await asyncio.gather(*(one(i, gate) for i in range(total)))
                elapsed = time.perf_counter() - start
                rows.append(Throughput(concurrency, total, latency_s, total / elapsed))
        finally:
            await mesh.stop(lead)
            await mesh.stop(worker)
    return rows
