"""LLM-bound conversations: a small team against a loopback model with a fixed latency.

Each conversation asks the lead, which asks a worker for a draft (one model call) and
then answers with its own model (a second call), through the real openai SDK against a
loopback OpenAI-compatible server that answers every request after a fixed delay. The
ideal is C conversations / (2 x latency) per second; the ratio shows what the runtime
loses on top of the model (scheduling, messaging, SDK, HTTP).

The `no SDK` variant runs the same conversations with each model call a plain wait of
the same latency: no SDK, no HTTP, no loopback server. On two shared cores the SDK and
HTTP path costs several milliseconds of CPU per conversation, more than the runtime's
own messaging (see the benchmarks guide), and at 32 conversations in flight that CPU,
not the runtime, is the limit; this variant measures what the runtime itself loses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from actors import Completion, LLMAgent, Prompt, Reasoner
from actors.loopback import LoopbackLLMServer, Step
from mesh import Agent, Context, Mesh, handler
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


class Wait(Message, type="bench.wait/1"):
    """A model call that is a plain wait: the `no SDK` variant's prompt."""

    seconds: float
    text: str


class Waiter(Agent):
    """The `no SDK` variant's worker: a model call that only waits."""

    @handler
    async def on_wait(self, msg: Wait, ctx: Context) -> Completion:
        await asyncio.sleep(msg.seconds)
        return Completion(text=f"draft of {msg.text}", model=MODEL)


class WaitDraft(Message, type="bench.wait_draft/1"):
    """A conversation of the `no SDK` variant: the worker to ask, and the calls' latency."""

    worker: str
    text: str
    seconds: float


class WaitingLead(Agent):
    """The `no SDK` variant's lead: asks a waiter for a draft, then waits as its own call."""

    @handler
    async def on_draft(self, msg: WaitDraft, ctx: Context) -> Completion:
        prompt = Wait(seconds=msg.seconds, text=msg.text)
        draft = await ctx.ask(msg.worker, prompt, expect=Completion)
        await asyncio.sleep(msg.seconds)
        return Completion(text=f"answer to {draft.text}", model=MODEL)


@dataclass(frozen=True)
class Throughput:
    """Conversations per second at one concurrency, next to the ideal."""

    concurrency: int
    conversations: int
    latency_s: float
    per_s: float
    #: "openai SDK" (the loopback server over HTTP) or "no SDK" (each call a plain wait).
    model: str = "openai SDK"

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
    """Measure conversations per second at each concurrency, with the SDK and without."""
    rows = []
    most = max(concurrencies)
    suffix = str(time.time_ns())[-9:]
    with LoopbackLLMServer() as server:
        server.always(MODEL, Step(text="fine", delay_s=latency_s, usage=(40, 10)))
        worker, lead = f"llm-worker-{suffix}", f"llm-lead-{suffix}"
        for cls, name in ((Reasoner, worker), (Lead, lead)):
            await mesh.spawn(cls, name=name, model=f"openai:{MODEL}", concurrency=most,
                             base_url=server.openai_url, api_key="loopback")  # fmt: skip
        try:
            rows += await _conversations(
                mesh, lead, lambda i: Draft(worker=worker, text=f"conversation {i}"),
                model="openai SDK", latency_s=latency_s, concurrencies=concurrencies,
                rounds=rounds,
            )  # fmt: skip
        finally:
            await mesh.stop(lead)
            await mesh.stop(worker)
    worker, lead = f"llm-waiter-{suffix}", f"llm-waiting-lead-{suffix}"
    await mesh.spawn(Waiter, name=worker, concurrency=most)
    await mesh.spawn(WaitingLead, name=lead, concurrency=most)
    try:
        rows += await _conversations(
            mesh, lead, lambda i: WaitDraft(worker=worker, text=f"conversation {i}",
                                            seconds=latency_s),
            model="no SDK", latency_s=latency_s, concurrencies=concurrencies, rounds=rounds,
        )  # fmt: skip
    finally:
        await mesh.stop(lead)
        await mesh.stop(worker)
    return rows


async def _conversations(
    mesh: Mesh, lead: str, conversation: Callable[[int], Message], *, model: str,
    latency_s: float, concurrencies: tuple[int, ...], rounds: int,
) -> list[Throughput]:  # fmt: skip
    rows = []
    for concurrency in concurrencies:
        total = concurrency * rounds
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, gate: asyncio.Semaphore) -> None:
            async with gate:
                await mesh.ask(lead, conversation(i), timeout=60, expect=Completion)

        await one(-1, gate)  # warm the SDK clients and links
        start = time.perf_counter()
        await asyncio.gather(*(one(i, gate) for i in range(total)))
        elapsed = time.perf_counter() - start
        rows.append(Throughput(concurrency, total, latency_s, total / elapsed, model))
    return rows
