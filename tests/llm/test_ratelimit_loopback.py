"""The limiter with the real openai and anthropic SDKs against the loopback server (no Ray:
the key's scheduler runs in the process): provider headers adopted, 429s pausing the key,
fairness across conversations, and the offline model under limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import LLMClient, RetryPolicy
from actors.loopback import LoopbackLimits, LoopbackLLMServer, Step
from actors.providers import text_sink

PROVIDERS = ["openai", "anthropic"]
PATIENT = RetryPolicy(max_attempts=6, base_delay_s=0.05, max_delay_s=1.0)


@pytest.fixture
def limited() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer(limits=LoopbackLimits(requests=5, window_s=1.0)) as server:
        yield server


def _client(server: LoopbackLLMServer, provider: str, model: str, **kwargs: Any) -> LLMClient:
    url = server.openai_url if provider == "openai" else server.anthropic_url
    kwargs.setdefault("retry", PATIENT)
    return LLMClient(f"{provider}:{model}", agent="limited", api_key="sk-loop", base_url=url,
                     **kwargs)  # fmt: skip


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_providers_headers_set_the_limit_so_only_the_first_429_comes(
    limited: LoopbackLLMServer, provider: str, streamed: bool
) -> None:
    model = f"headers-{provider}-{'streamed' if streamed else 'whole'}"
    limited.always(model, Step(text="ok"))
    pieces: list[str] = []
    if streamed:  # a streamed answer's response carries the headers too

        async def sink(piece: str) -> None:
            pieces.append(piece)

        text_sink.set(sink)  # this test's context only
    # Configured far too high: the provider's headers (5 a window) correct it. The
    # headers give no window: the configured one (a second here, scaled from a minute).
    limits = {"requests": 1000, "window_s": 1.0, "lease_s": 0.1}
    client = _client(limited, provider, model, limits=limits)
    await client.complete("first", timeout=10)  # its reply carries the headers
    started = time.monotonic()
    await asyncio.gather(*(client.complete(f"q{i}", timeout=30) for i in range(12)))
    elapsed = time.monotonic() - started
    server_limits = limited.limits
    assert server_limits is not None
    assert server_limits.refused <= 1
    assert server_limits.admitted == 13
    # 13 requests at 5 a second with a burst of 5: at least 1.5 s, and well short of
    # the 13 s a limiter that had lost the window (one a second) would take.
    assert 1.4 <= elapsed <= 8.0, elapsed
    assert len(pieces) == (13 if streamed else 0)  # each answer came as a stream, or whole


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_429_pauses_the_key_for_every_client_until_its_retry_after(
    provider: str,
) -> None:
    model = f"paused-{provider}"
    with LoopbackLLMServer() as server:
        server.script(model, Step(status=429, headers={"retry-after": "1"}))
        server.always(model, Step(text="ok"))
        limits = {"requests": 100, "window_s": 1.0, "lease_s": 0.1}
        one = _client(server, provider, model, limits=limits)
        other = _client(server, provider, model, limits=limits)
        first = asyncio.create_task(one.complete("hit the 429", timeout=20))
        await asyncio.sleep(0.2)  # the 429 has come back and paused the key
        started = time.monotonic()
        await other.complete("another client, same key", timeout=20)
        assert time.monotonic() - started >= 0.6  # waited out the pause: no second 429
        await first
        statuses = [r.path for r in server.requests_for(model)]
        assert len(statuses) == 3  # the 429, its retry, the other client's call


async def test_a_conversation_of_many_calls_does_not_starve_one_of_few() -> None:
    model = "fair"
    with LoopbackLLMServer() as server:
        server.always(model, Step(text="ok"))
        client = _client(server, "openai", model,
                         limits={"requests": 4, "window_s": 1.0, "lease_s": 0.1})  # fmt: skip
        await client.complete("drain", timeout=10, trace_id="0" * 32)
        await client.complete("drain", timeout=10, trace_id="0" * 32)
        await client.complete("drain", timeout=10, trace_id="0" * 32)
        busy = [client.complete(f"busy {i}", timeout=30, trace_id="a" * 32) for i in range(6)]
        tasks = [asyncio.create_task(c) for c in busy]
        await asyncio.sleep(0.05)  # the busy conversation's calls are queued first
        quiet = [client.complete(f"quiet {i}", timeout=30, trace_id="b" * 32) for i in range(2)]
        await asyncio.gather(*tasks, *quiet)
        order = [r.body["messages"][-1]["content"].split()[0] for r in server.requests_for(model)]
        order = [who for who in order if who != "drain"]
        # Round robin over the two conversations: after the busy one's calls already on
        # their way, the quiet one's alternate with the rest, instead of coming last.
        last_quiet = max(i for i, who in enumerate(order) if who == "quiet")
        assert last_quiet <= 4, order


async def test_the_offline_model_keeps_to_limits_too() -> None:
    client = LLMClient("offline:limited", limits={"requests": 4, "window_s": 1.0, "lease_s": 0.1})
    started = time.monotonic()

    async def call(i: int) -> float:
        await client.complete(f"q{i}", timeout=20)
        return time.monotonic() - started

    finished = sorted(await asyncio.gather(*(call(i) for i in range(8))))
    # A burst of 4, then one every quarter second: whatever the machine's load, the k-th
    # call past the burst cannot finish before k quarters have passed (load only delays).
    assert all(at >= 0.2 * k for k, at in enumerate(finished[4:], start=1)), finished
