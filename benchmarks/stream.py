"""Streaming through the mesh: time to first token per hop, and chunks per second.

Time to first token: a loopback OpenAI-compatible server streams a 20-word answer, a
few milliseconds a word. Beside each other, in alternating rounds, the openai SDK calls
it directly (the baseline) and the mesh streams the same answer through 1, 2 and 3 hops:
an `LLMAgent` asked from the edge with `Mesh.stream`, then one and two `Forwarder`s in
front of it, each passing its peer's chunks up (`ctx.stream(..., forward=True)`). The
time is from the call to the first piece of text the reader holds; the target of issue
20 is at most 1.2x the direct call plus 5 ms per hop.

Chunks per second: an agent emits small chunks as fast as the stream takes them, read
at the edge directly (1 hop) and through a forwarder (2 hops).
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import openai
from rich.table import Table

from actors import Completion, LLMAgent, Prompt
from actors.loopback import LoopbackLLMServer, Step
from mesh import Agent, Context, Mesh, handler
from protocols import Message

__all__ = ["Figures", "Throughput", "Ttft", "as_json", "run", "table"]

MODEL = "bench-stream"
WORDS = 20
#: The share the mesh may add on top of the direct call, and the time per hop (issue 20).
TARGET_RATIO = 1.2
TARGET_PER_HOP_MS = 5.0


class Flow(Message, type="bench.stream.flow/1"):
    """Emit `count` small chunks."""

    count: int


class Flowed(Message, type="bench.stream.flowed/1"):
    count: int


class Forwarder(Agent):
    """Passes its peer's stream up, chunk by chunk, with their own labels."""

    concurrency = 8

    def __init__(self, to: str) -> None:
        self.to = to

    @handler
    async def on_prompt(self, msg: Prompt, ctx: Context) -> Completion:
        stream = ctx.stream(self.to, msg, expect=Completion, forward=True)
        reply = await stream.result()
        assert isinstance(reply, Completion)
        return reply

    @handler
    async def on_flow(self, msg: Flow, ctx: Context) -> Flowed:
        reply = await ctx.stream(self.to, msg, expect=Flowed, forward=True).result()
        assert isinstance(reply, Flowed)
        return reply


class Emitter(Agent):
    """Emits small chunks as fast as its reader takes them."""

    @handler
    async def on_flow(self, msg: Flow, ctx: Context) -> Flowed:
        for i in range(msg.count):
            await ctx.emit(text="x", data=None if i else {"first": True})
        return Flowed(count=msg.count)


@dataclass(frozen=True)
class Ttft:
    """Time to first token through `hops` (0: the SDK called directly), medians of rounds."""

    hops: int
    ttft_ms: float
    total_ms: float
    rounds: int
    direct_ms: float

    @property
    def ratio(self) -> float:
        """Over the direct call's."""
        return self.ttft_ms / self.direct_ms

    @property
    def target_ms(self) -> float:
        """1.2x the direct call plus 5 ms per hop."""
        return TARGET_RATIO * self.direct_ms + TARGET_PER_HOP_MS * self.hops

    @property
    def met(self) -> bool:
        """Within the target."""
        return self.ttft_ms <= self.target_ms


@dataclass(frozen=True)
class Throughput:
    """Chunks per second read at the edge, through `hops`."""

    hops: int
    chunks: int
    per_s: float


@dataclass(frozen=True)
class Figures:
    """What the suite measured."""

    ttft: list[Ttft]
    throughput: list[Throughput]
    chunk_delay_ms: float


async def run(mesh: Mesh, *, quick: bool = False) -> Figures:
    """Measure time to first token per hop and chunks per second (`quick`: small)."""
    rounds, chunks = (8, 1000) if quick else (30, 10_000)
    delay_s = 0.005
    suffix = uuid.uuid4().hex[:6]
    names: list[str] = []
    try:
        with LoopbackLLMServer() as server:
            server.always(MODEL, Step(text=" ".join(f"word{i}" for i in range(WORDS)),
                                      chunk_delay_s=delay_s, usage=(20, WORDS)))  # fmt: skip
            entry = await _chain(mesh, names, suffix, server.openai_url)
            ttft = await _ttft(mesh, entry, server.openai_url, rounds=rounds)
        emitter = f"emitter-{suffix}"
        await mesh.spawn(Emitter, name=emitter)
        names.append(emitter)
        forwarder = f"flow-fwd-{suffix}"
        await mesh.spawn(Forwarder, name=forwarder, to=emitter)
        names.append(forwarder)
        throughput = [await _throughput(mesh, name, hops, chunks)
                      for hops, name in ((1, emitter), (2, forwarder))]  # fmt: skip
    finally:
        for name in reversed(names):
            await mesh.stop(name)
    return Figures(ttft=ttft, throughput=throughput, chunk_delay_ms=delay_s * 1000)


async def _chain(mesh: Mesh, names: list[str], suffix: str, url: str) -> list[str]:
    # The agent asked at each hop count: the LLM agent, then forwarders in front of it.
    llm = f"stream-llm-{suffix}"
    await mesh.spawn(LLMAgent, name=llm, model=f"openai:{MODEL}", base_url=url,
                     api_key="loopback", concurrency=8)  # fmt: skip
    names.append(llm)
    entry = [llm]
    for hop in (2, 3):
        name = f"stream-fwd{hop}-{suffix}"
        await mesh.spawn(Forwarder, name=name, to=entry[-1])
        names.append(name)
        entry.append(name)
    return entry


async def _ttft(mesh: Mesh, entry: list[str], url: str, *, rounds: int) -> list[Ttft]:
    client = openai.AsyncOpenAI(api_key="loopback", base_url=url, max_retries=0)
    times: dict[int, list[tuple[float, float]]] = {hops: [] for hops in range(4)}
    try:
        for _warm in range(2):
            await _direct(client)
            for name in entry:
                await _through(mesh, name)
        for _round in range(rounds):  # alternating, so that noise hits every column alike
            times[0].append(await _direct(client))
            for hops, name in enumerate(entry, start=1):
                times[hops].append(await _through(mesh, name))
    finally:
        await client.close()
    direct = statistics.median(first for first, _ in times[0]) * 1000
    return [Ttft(hops=hops, ttft_ms=statistics.median(f for f, _ in got) * 1000,
                 total_ms=statistics.median(t for _, t in got) * 1000, rounds=rounds,
                 direct_ms=direct)
            for hops, got in times.items()]  # fmt: skip


async def _direct(client: openai.AsyncOpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    chunks = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}], max_tokens=100, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    async for chunk in chunks:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    assert first is not None
    return first, time.perf_counter() - started


async def _through(mesh: Mesh, name: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    async with mesh.stream(name, Prompt(text="go"), timeout=30) as stream:
        async for chunk in stream:
            if first is None and chunk.text:
                first = time.perf_counter() - started
    assert first is not None
    assert isinstance(stream.reply, Completion)
    return first, time.perf_counter() - started


async def _throughput(mesh: Mesh, name: str, hops: int, chunks: int) -> Throughput:
    await mesh.stream(name, Flow(count=10), timeout=60).result()  # warm the links
    started = time.perf_counter()
    seen = 0
    async with mesh.stream(name, Flow(count=chunks), timeout=300) as stream:
        async for _chunk in stream:
            seen += 1
    elapsed = time.perf_counter() - started
    assert seen == chunks
    return Throughput(hops=hops, chunks=chunks, per_s=chunks / elapsed)


def table(figures: Figures) -> Table:
    """Return the suite's table: time to first token per hop beside its target, then chunks/s."""
    result = Table(title=f"streaming: time to first token, {WORDS} words "
                   f"{figures.chunk_delay_ms:g} ms apart (target <= {TARGET_RATIO:g}x direct "
                   f"+ {TARGET_PER_HOP_MS:g} ms/hop)")  # fmt: skip
    for column in ("path", "first token ms", "x direct", "target ms", "met", "whole answer ms"):
        result.add_column(column, justify="left" if column == "path" else "right")
    for row in figures.ttft:
        path = "openai SDK, direct" if row.hops == 0 else f"mesh, {row.hops} hop(s)"
        result.add_row(path, f"{row.ttft_ms:.1f}", f"{row.ratio:.2f}",
                       "-" if row.hops == 0 else f"{row.target_ms:.1f}",
                       "-" if row.hops == 0 else ("yes" if row.met else "NO"),
                       f"{row.total_ms:.1f}")  # fmt: skip
    result.caption = "chunks per second read at the edge: " + ", ".join(
        f"{t.hops} hop(s) {t.per_s:,.0f}/s ({t.chunks:,} chunks)" for t in figures.throughput
    )
    return result


def as_json(figures: Figures) -> dict[str, Any]:
    """Return the figures for ``raymesh bench --json``."""
    return {
        "ttft": [{**asdict(row), "ratio": row.ratio, "target_ms": row.target_ms, "met": row.met}
                 for row in figures.ttft],
        "throughput": [asdict(row) for row in figures.throughput],
        "chunk_delay_ms": figures.chunk_delay_ms,
    }  # fmt: skip
