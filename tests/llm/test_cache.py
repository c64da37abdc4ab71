"""The response cache with the real SDKs against the loopback server: the second identical
call never reaches it, usage records it as cached and free, and the shared file is private."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors import LLMClient, UsageLedger
from actors.loopback import LoopbackLLMServer, Step
from mesh import ConfigError

PRICES = {"openai:priced": {"input": 1.0, "output": 2.0}}


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(server: LoopbackLLMServer) -> None:
    server.reset()
    server.always("priced", Step(text="cached answer", usage=(1000, 500)))


def _client(server: LoopbackLLMServer, **kwargs: object) -> LLMClient:
    return LLMClient("openai:priced", agent="cacher", api_key="dummy",
                     base_url=server.openai_url, prices=PRICES, **kwargs)  # fmt: skip


async def test_the_second_identical_call_never_reaches_the_server(
    server: LoopbackLLMServer,
) -> None:
    client = _client(server, cache=True)
    first = await client.complete("What is 2+2?", timeout=10, trace_id="a" * 32)
    second = await client.complete("What is 2+2?", timeout=10, trace_id="b" * 32)
    assert second.text == first.text == "cached answer"
    assert len(server.requests_for("priced")) == 1
    ledger: UsageLedger = client.ledger
    fresh, cached = ledger.records
    assert (fresh.cached, cached.cached) == (False, True)
    assert fresh.cost_usd == pytest.approx(0.002)  # 1000 in at $1/M, 500 out at $2/M
    assert cached.cost_usd == 0.0
    assert cached.saved_usd == pytest.approx(fresh.cost_usd)
    assert (ledger.total.calls, ledger.total.cached_calls) == (2, 1)
    assert ledger.total.saved_usd == pytest.approx(0.002)
    assert second.usage.cost_usd == 0.0
    # Another prompt, tool set or parameter is another request.
    await client.complete("What is 2+3?", timeout=10)
    await client.complete("What is 2+2?", timeout=10, max_tokens=7)
    assert len(server.requests_for("priced")) == 3
    await client.aclose()


async def test_sampled_requests_are_not_cached_unless_configured(
    server: LoopbackLLMServer,
) -> None:
    plain = _client(server, cache=True)
    for _ in range(2):
        await plain.complete("Tell me a story", timeout=10, temperature=0.8)
    assert len(server.requests_for("priced")) == 2
    assert plain.ledger.total.cached_calls == 0
    sampled = _client(server, cache={"sampled": True})
    for _ in range(2):
        await sampled.complete("Tell me a story", timeout=10, temperature=0.8)
    assert len(server.requests_for("priced")) == 3


async def test_a_shared_cache_answers_another_client_from_a_private_file(
    server: LoopbackLLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "cache" / "team.sqlite"
    settings = {"shared": True, "path": str(path)}
    one, two = _client(server, cache=settings), _client(server, cache=settings)
    await one.complete("Shared question", timeout=10)
    reply = await two.complete("Shared question", timeout=10)
    assert reply.text == "cached answer"
    assert len(server.requests_for("priced")) == 1
    assert two.ledger.total.cached_calls == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    await one.aclose()
    await two.aclose()


async def test_the_default_shared_file_is_per_namespace_under_the_raymesh_home(
    server: LoopbackLLMServer,
) -> None:
    client = _client(server, cache={"shared": True})
    await client.complete("Where does it go?", timeout=10)
    await client.aclose()
    home = Path(os.environ["RAYMESH_HOME"])
    # The mesh's namespace when this process is in Ray (the suite's session Ray may be up).
    namespace = ray.get_runtime_context().namespace if ray.is_initialized() else "default"
    assert (home / "cache" / f"{namespace}.sqlite").is_file()


async def test_old_and_excess_answers_are_dropped(server: LoopbackLLMServer) -> None:
    client = _client(server, cache={"ttl_s": 0.2, "max_entries": 2})
    for prompt in ("one", "two", "three", "one"):  # "one" was pushed out by "three"
        await client.complete(prompt, timeout=10)
    assert len(server.requests_for("priced")) == 4
    await client.complete("three", timeout=10)  # still there
    assert len(server.requests_for("priced")) == 4
    await asyncio.sleep(0.25)
    await client.complete("three", timeout=10)  # expired
    assert len(server.requests_for("priced")) == 5


def test_bad_cache_settings_are_config_errors(server: LoopbackLLMServer) -> None:
    with pytest.raises(ConfigError, match="cache settings") as caught:
        _client(server, cache={"ttl": 5})
    assert caught.value.hint
    assert caught.value.agent == "cacher"
