"""One rate limit per API key across Ray agents, against a loopback server that enforces it.

Each agent is its own Ray actor with its own openai SDK client; they share one key, hence
one limiter actor. The server answers 429 (with OpenAI's headers and ``retry-after``)
past the limit, so any over-sending shows up in its count of refusals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from conftest import Spawn

from actors import Completion, LLMAgent, Prompt, RateLimitedError
from actors.loopback import LoopbackLimits, LoopbackLLMServer, Step
from actors.ratelimit import actor_name, fingerprint
from mesh import HandlerError, Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: 20 requests a second: the per-minute limits of a provider, scaled to run in seconds.
RATE = 20
KEY = "sk-shared-key-0123456789"
LIMITS = {"requests": RATE, "window_s": 1.0, "lease_s": 0.1}


@pytest.fixture
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer(limits=LoopbackLimits(requests=RATE, window_s=1.0)) as running:
        yield running


async def _agents(
    spawn: Spawn, server: LoopbackLLMServer, model: str, count: int, **limits: Any
) -> list[str]:
    names = []
    for i in range(count):
        info = await spawn(
            LLMAgent, f"limited{i}", model=f"openai:{model}", base_url=server.openai_url,
            api_key=KEY, limits={"openai": {**LIMITS, **limits}},
            concurrency=8,
        )  # fmt: skip
        names.append(info.name)
    return names


async def _warm(mesh: Mesh, names: list[str], window_s: float) -> None:
    """One call each (the SDK's first request is slow), then a window for the key to refill."""
    await asyncio.gather(*(
        mesh.ask(name, Prompt(text=f"{name} warm"), timeout=30, expect=Completion)
        for name in names
    ))  # fmt: skip
    await asyncio.sleep(window_s * 1.5)


async def test_agents_sharing_a_key_keep_to_its_limit_with_no_429_after_the_first(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    server.always("shared", Step(text="ok", usage=(20, 5)))
    names = await _agents(spawn, server, "shared", 8)
    await _warm(mesh, names, 1.0)
    limits = server.limits
    assert limits is not None
    warm = limits.admitted
    per_agent = 14

    async def work(name: str) -> None:
        await asyncio.gather(*(
            mesh.ask(name, Prompt(text=f"{name} {i}"), timeout=60, expect=Completion)
            for i in range(per_agent)
        ))  # fmt: skip

    await asyncio.gather(*(work(name) for name in names))
    assert limits.admitted == warm + 8 * per_agent
    assert limits.refused <= 1
    # A full bucket (one window's worth) goes at once; the rest at the configured rate,
    # which the limiter uses to within 10%.
    times = sorted(limits.admitted_at)[warm:]
    rate = (len(times) - RATE) / (times[-1] - times[0])
    assert 0.9 * RATE <= rate <= 1.1 * RATE, rate


async def test_the_limiter_actor_is_named_by_a_fingerprint_never_the_key(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    server.always("named", Step(text="ok"))
    [name] = await _agents(spawn, server, "named", 1)
    await mesh.ask(name, Prompt(text="hello"), timeout=20, expect=Completion)
    digest = fingerprint("openai", "named", api_key=KEY, base_url=server.openai_url)
    actor = ray.get_actor(actor_name(digest))
    stats = await actor.stats.remote()
    assert stats["granted"] >= 1
    assert stats["requests_per_window"] == RATE
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert actor_name(digest) in names
    assert not [n for n in names if "sk-shared" in n]


async def test_a_higher_priority_agent_gets_the_capacity_first(mesh: Mesh, spawn: Spawn) -> None:
    # The server announces its own limit in its headers, and the limiter adopts it: a
    # server limited as the agents are, 5 a second.
    with LoopbackLLMServer(limits=LoopbackLimits(requests=5, window_s=1.0)) as server:
        await _high_before_low(mesh, spawn, server)


async def _high_before_low(mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer) -> None:
    server.always("ranked", Step(text="ok"))
    [low] = await _agents(spawn, server, "ranked", 1, requests=5, priority=0)
    [high] = await _agents(spawn, server, "ranked", 1, requests=5, priority=5)
    await _warm(mesh, [low, high], 1.0)
    warm = len(server.requests_for("ranked"))
    calls = 8

    async def burst(name: str) -> None:
        await asyncio.gather(*(
            mesh.ask(name, Prompt(text=f"{name} {i}"), timeout=60, expect=Completion)
            for i in range(calls)
        ))  # fmt: skip

    await asyncio.gather(burst(low), burst(high))
    requests = server.requests_for("ranked")[warm:]
    order = [r.body["messages"][-1]["content"].split()[0] for r in requests]
    # The first few go out at once (the bucket is full, 5: all of them may be the low
    # one's, whose burst starts first); from then on the key's capacity goes to the
    # high-priority agent while it has calls waiting: the low one's calls come after its
    # last, but for those of the burst (without priority, about 8 would come before it).
    last_high = max(i for i, who in enumerate(order) if who == high)
    assert order.count(low) == order.count(high) == calls
    assert sum(who == low for who in order[: last_high + 1]) <= 5, order


async def test_a_call_that_cannot_get_capacity_in_its_deadline_fails_at_once_typed(
    mesh: Mesh, spawn: Spawn
) -> None:
    # A server without limits: one with them would announce its own (20 a second) in
    # its headers, and the limiter would adopt them.
    with LoopbackLLMServer() as server:
        await _refused_at_once(mesh, spawn, server)


async def _refused_at_once(mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer) -> None:
    server.always("scarce", Step(text="ok"))
    [name] = await _agents(spawn, server, "scarce", 1, requests=1, window_s=60.0)
    await mesh.ask(name, Prompt(text="first"), timeout=20, expect=Completion)
    digest = fingerprint("openai", "scarce", api_key=KEY, base_url=server.openai_url)
    started = time.monotonic()
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(name, Prompt(text="second"), timeout=10, expect=Completion)
    assert time.monotonic() - started < 6.0  # not slept to the 10 s deadline
    error = caught.value
    assert error.remote_type == RateLimitedError.__name__
    assert f"key {digest}" in error.message
    assert "capacity comes in about" in error.message
    assert "sk-shared" not in str(error)
    assert len(server.requests_for("scarce")) == 1
