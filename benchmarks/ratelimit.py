"""Rate limits and the response cache, measured against a loopback provider.

Rate limits: 8 agents (Ray actors, each with its own openai SDK client) share one key
that the loopback server limits to R requests per window, answering 429 (with OpenAI's
headers and ``retry-after``) past it. With the limiter the agents draw capacity from the
key's one limiter actor; without it, each retries its own 429s with backoff. The limit is
per second rather than per minute, scaled through the same `RateLimits.window_s` a team
file sets, so a run takes seconds. Figures: completed calls per minute against the
limit, 429s received, and the p95 time from ask to answer (the model answers at once,
so that time is waiting: for capacity, or in backoff after 429s).

Cache: each agent makes a repeated workload (the same prompts twice) against a model
that takes 50 ms and costs money; the cache on versus off: requests that reach the
model, dollars, and the latency per call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from actors import CircuitBreaker, LLMClient, RetryPolicy
from actors.loopback import LoopbackLimits, LoopbackLLMServer, Step
from benchmarks.percentiles import percentile
from mesh import Agent, Context, Mesh, MeshError, handler
from protocols import Message

#: Models on the loopback servers: one key's limited model; the cache part's priced one.
LIMITED, PRICED = "limited", "priced"
PRICE = {f"openai:{PRICED}": {"input": 2.5, "output": 10.0}}


class Call(Message, type="bench.ratelimit_call/1"):
    """Make one model call with the client named `variant`."""

    variant: str
    text: str


class Called(Message, type="bench.ratelimit_called/1"):
    cost_usd: float
    cached: bool


class Caller(Agent):
    """Holds one client per variant (limiter on / off, cache on / off) of the same models."""

    def __init__(self, limited_url: str, priced_url: str, rate: int) -> None:
        self.limited_url, self.priced_url, self.rate = limited_url, priced_url, rate
        self.clients: dict[str, LLMClient] = {}

    async def on_start(self) -> None:
        """Build the four clients; no request is made."""
        limits = {"requests": self.rate, "window_s": 1.0, "lease_s": 0.1}
        patient = RetryPolicy(max_attempts=8, base_delay_s=0.1, max_delay_s=2.0)
        common: dict[str, Any] = {"api_key": "sk-bench-shared-key", "agent": "caller"}
        self.clients = {
            # A breaker each: the 429s of one run must not open the other's.
            "limiter on": LLMClient(f"openai:{LIMITED}", base_url=self.limited_url,
                                    limits=limits, retry=patient,
                                    breaker=CircuitBreaker(f"openai:{LIMITED}"), **common),
            "limiter off": LLMClient(f"openai:{LIMITED}", base_url=self.limited_url,
                                     retry=patient,
                                     breaker=CircuitBreaker(f"openai:{LIMITED}"), **common),
            "cache on": LLMClient(f"openai:{PRICED}", base_url=self.priced_url, prices=PRICE,
                                  cache=True, **common),
            "cache off": LLMClient(f"openai:{PRICED}", base_url=self.priced_url, prices=PRICE,
                                   **common),
        }  # fmt: skip

    async def on_stop(self) -> None:
        """Close the clients."""
        for client in self.clients.values():
            await client.aclose()

    @handler
    async def on_call(self, msg: Call, ctx: Context) -> Called:
        """One call through the named client, bounded by the message's deadline."""
        result = await self.clients[msg.variant].complete(
            msg.text, deadline=ctx.deadline, trace_id=ctx.trace_id
        )
        return Called(cost_usd=result.usage.cost_usd, cached=result.usage.cached_calls > 0)


@dataclass(frozen=True)
class LimitRow:
    """One run of the rate-limit workload."""

    limiter: str
    calls: int
    completed: int
    calls_per_min: float
    limit_per_min: float
    http_429: int
    p95_wait_ms: float


@dataclass(frozen=True)
class CacheRow:
    """One run of the repeated workload."""

    cache: str
    calls: int
    model_requests: int
    cost_usd: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Outcome:
    """Both parts, run side by side."""

    limits: list[LimitRow]
    cache: list[CacheRow]


async def run(mesh: Mesh, *, agents: int = 8, rate: int = 20, quick: bool = False) -> Outcome:
    """Run the rate-limit workload with the limiter off then on, then the cache part."""
    per_agent = 8 if quick else 20
    suffix = str(time.time_ns())[-9:]
    with (
        LoopbackLLMServer(limits=LoopbackLimits(requests=rate, window_s=1.0)) as limited,
        LoopbackLLMServer() as priced,
    ):
        limited.always(LIMITED, Step(text="ok", usage=(30, 10)))
        priced.always(PRICED, Step(text="a priced answer", delay_s=0.05, usage=(800, 200)))
        names = [f"rl-caller-{suffix}-{i}" for i in range(agents)]
        for name in names:
            await mesh.spawn(Caller, name=name, concurrency=8, limited_url=limited.openai_url,
                             priced_url=priced.openai_url, rate=rate)  # fmt: skip
        try:
            rows = []
            for variant in ("limiter off", "limiter on"):
                rows.append(
                    await _limited(mesh, names, limited, variant, per_agent=per_agent, rate=rate)
                )
                await asyncio.sleep(1.5)  # let the key's bucket fill again between runs
            cache = [await _cached(mesh, names, priced, v) for v in ("cache off", "cache on")]
        finally:
            for name in names:
                await mesh.stop(name)
    return Outcome(rows, cache)


async def _limited(
    mesh: Mesh, names: list[str], server: LoopbackLLMServer, variant: str, *, per_agent: int,
    rate: int,
) -> LimitRow:  # fmt: skip
    limits = server.limits
    assert limits is not None
    refused_before = limits.refused
    waits: list[float] = []

    async def one(name: str, i: int) -> bool:
        started = time.perf_counter()
        try:
            await mesh.ask(name, Call(variant=variant, text=f"{name} {i}"), timeout=60,
                           expect=Called)  # fmt: skip
        except MeshError:
            return False
        waits.append(time.perf_counter() - started)
        return True

    started = time.perf_counter()
    done = await asyncio.gather(*(one(n, i) for n in names for i in range(per_agent)))
    elapsed = time.perf_counter() - started
    p95 = percentile(waits, 0.95)
    return LimitRow(
        limiter=variant.removeprefix("limiter "), calls=len(done), completed=sum(done),
        calls_per_min=sum(done) / elapsed * 60, limit_per_min=rate * 60.0,
        http_429=limits.refused - refused_before, p95_wait_ms=(p95 or 0.0) * 1000,
    )  # fmt: skip


async def _cached(
    mesh: Mesh, names: list[str], server: LoopbackLLMServer, variant: str
) -> CacheRow:
    before = len(server.requests)
    latencies: list[float] = []
    costs: list[float] = []

    async def agent(name: str) -> None:
        for i in (0, 1, 2, 3, 0, 1, 2, 3):  # the same four prompts, twice
            started = time.perf_counter()
            reply = await mesh.ask(name, Call(variant=variant, text=f"{name} question {i}"),
                                   timeout=60, expect=Called)  # fmt: skip
            latencies.append(time.perf_counter() - started)
            costs.append(reply.cost_usd)

    await asyncio.gather(*(agent(name) for name in names))
    return CacheRow(
        cache=variant.removeprefix("cache "), calls=len(latencies),
        model_requests=len(server.requests) - before, cost_usd=sum(costs),
        p50_ms=(percentile(latencies, 0.5) or 0.0) * 1000,
        p95_ms=(percentile(latencies, 0.95) or 0.0) * 1000,
    )  # fmt: skip


def tables(outcome: Outcome) -> list[Table]:
    """The two tables `raymesh bench ratelimit` prints."""
    limits = Table(title="one key's rate limit shared by 8 agents: limiter on vs off")
    for column in ("limiter", "calls", "completed", "calls/min", "limit/min", "429s",
                   "p95 wait ms"):  # fmt: skip
        limits.add_column(column, justify="left" if column == "limiter" else "right")
    for r in outcome.limits:
        limits.add_row(r.limiter, str(r.calls), str(r.completed), f"{r.calls_per_min:,.0f}",
                       f"{r.limit_per_min:,.0f}", str(r.http_429),
                       f"{r.p95_wait_ms:.0f}")  # fmt: skip
    cache = Table(title="a repeated workload (each prompt twice), response cache on vs off")
    for column in ("cache", "calls", "model requests", "cost $", "p50 ms", "p95 ms"):
        cache.add_column(column, justify="left" if column == "cache" else "right")
    for c in outcome.cache:
        cache.add_row(c.cache, str(c.calls), str(c.model_requests), f"{c.cost_usd:.4f}",
                      f"{c.p50_ms:.1f}", f"{c.p95_ms:.1f}")  # fmt: skip
    return [limits, cache]
