"""The real openai and anthropic SDKs against a loopback server: answers, retries, breaker,
fallback, structured output, tools, budgets, deadlines and configuration errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from actors import (
    Budget,
    BudgetExceededError,
    LLMAgent,
    LLMClient,
    ModelUnavailableError,
    PriceTable,
    ProviderError,
    RetryPolicy,
    RoutedClient,
    Router,
    StructuredOutputError,
    Tool,
    UsageLedger,
    reset_breakers,
)
from actors.breaker import BreakerState
from actors.loopback import LoopbackLLMServer, Step
from mesh import ConfigError, DeadlineExceededError

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(server: LoopbackLLMServer) -> None:
    server.reset()
    reset_breakers()


def make(server: LoopbackLLMServer, provider: str, model: str = "m1", **kwargs: Any) -> LLMClient:
    url = server.openai_url if provider == "openai" else server.anthropic_url
    kwargs.setdefault("retry", FAST)
    return LLMClient(f"{provider}:{model}", agent="tester", api_key="dummy", base_url=url, **kwargs)


class City(BaseModel):
    name: str
    population: int


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_plain_answer_records_reported_usage_and_cost(
    server: LoopbackLLMServer, provider: str
) -> None:
    prices = PriceTable({f"{provider}:m1": {"input": 1.0, "output": 2.0}})
    async with make(server, provider, prices=prices) as client:
        result = await client.complete(
            "hello there", system="Be brief.", timeout=5, trace_id="t" * 32
        )
    assert result.text == "echo: hello there"
    assert result.model == f"{provider}:m1"
    record = client.ledger.records[0]
    assert (record.input_tokens, record.output_tokens, record.estimated) == (12, 5, False)
    assert record.cost_usd == pytest.approx((12 * 1.0 + 5 * 2.0) / 1e6)
    assert record.agent == "tester"
    assert record.trace_id == "t" * 32
    assert record.latency_s > 0
    assert client.ledger.by_trace["t" * 32].calls == 1
    body = server.requests[0].body
    if provider == "anthropic":
        assert body["system"] == "Be brief."
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_usage_a_compatible_server_does_not_report_is_estimated_and_flagged(
    server: LoopbackLLMServer,
) -> None:
    # Some OpenAI-compatible servers omit `usage`; Anthropic's Messages API always has it.
    server.script("m1", Step(text="an answer of some length", usage=None))
    async with make(server, "openai") as client:
        await client.complete("count my tokens", timeout=5)
    record = client.ledger.records[0]
    assert record.estimated
    assert record.input_tokens > 0
    assert record.output_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_is_retried_after_the_advertised_wait_and_counted_once(
    server: LoopbackLLMServer, provider: str
) -> None:
    server.script("m1", Step(status=429, headers={"retry-after-ms": "200"}), Step(text="ok"))
    async with make(server, provider) as client:
        result = await client.complete("hi", timeout=5)
    assert result.text == "ok"
    first, second = server.requests
    assert second.at - first.at >= 0.2
    assert client.ledger.total.calls == 1
    assert client.breaker.state is BreakerState.CLOSED


async def test_a_retry_after_longer_than_the_deadline_fails_at_once(
    server: LoopbackLLMServer,
) -> None:
    server.script("m1", Step(status=429, headers={"retry-after": "30"}))
    started = time.monotonic()
    async with make(server, "openai") as client:
        with pytest.raises(ModelUnavailableError, match="would pass the deadline"):
            await client.complete("hi", timeout=2)
    assert time.monotonic() - started < 1.8  # before the 2 s deadline, not at it
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_persistent_server_errors_open_the_breaker_which_then_fails_fast(
    server: LoopbackLLMServer, provider: str
) -> None:
    server.always("m1", Step(status=500))
    async with make(server, provider) as client:
        client.breaker.failure_threshold = 3
        with pytest.raises(ModelUnavailableError, match="3 times in a row") as caught:
            await client.complete("hi", timeout=5)
        assert caught.value.agent == "tester"
        assert client.breaker.state is BreakerState.OPEN
        with pytest.raises(ModelUnavailableError, match="circuit breaker is open"):
            await client.complete("hi again", timeout=5)
    assert len(server.requests) == 3
    assert client.ledger.total.calls == 0


async def test_a_half_open_breaker_lets_one_probe_through_and_closes_on_success(
    server: LoopbackLLMServer,
) -> None:
    async with make(server, "openai") as client:
        client.breaker.cooldown_s = 0.0
        for _ in range(client.breaker.failure_threshold):
            client.breaker.record_failure()
        assert client.breaker.state is BreakerState.HALF_OPEN
        result = await client.complete("probe", timeout=5)
    assert result.text == "echo: probe"
    assert client.breaker.state is BreakerState.CLOSED


async def test_a_failing_model_falls_back_to_the_next_in_the_chain(
    server: LoopbackLLMServer,
) -> None:
    server.always("broken", Step(status=500))
    router = Router(default="openai:broken", fallback=["anthropic:healthy"])
    ledger = UsageLedger()
    async with RoutedClient(
        router,
        agent="tester",
        base_urls={"openai:broken": server.openai_url, "anthropic:healthy": server.anthropic_url},
        api_keys={"openai:broken": "k", "anthropic:healthy": "k"},
        ledger=ledger,
        retry=FAST,
    ) as client:
        client.clients["openai:broken"].breaker.failure_threshold = 3
        first = await client.complete("route me", timeout=5)
        second = await client.complete("route me again", timeout=5)
    assert (first.model, second.model) == ("anthropic:healthy", "anthropic:healthy")
    # The breaker opened during the first call: the second one skipped the broken model.
    assert len(server.requests_for("broken")) == 3
    assert set(ledger.by_model) == {"anthropic:healthy"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_malformed_structured_reply_is_repaired_once(
    server: LoopbackLLMServer, provider: str
) -> None:
    bad = '{"name": "Paris"}' if provider == "anthropic" else '{"name": "Paris", "popul'
    server.script(
        "m1",
        Step(structured=bad),
        Step(structured='{"name": "Paris", "population": 2100000}'),
    )
    async with make(server, provider) as client:
        result = await client.complete("Biggest city of France?", response_model=City, timeout=5)
    assert result.parsed == City(name="Paris", population=2100000)
    assert client.ledger.total.calls == 2
    repair = server.requests[1].body["messages"][-1]
    text = repair["content"] if isinstance(repair["content"], str) else str(repair["content"])
    assert "not valid for the required JSON schema" in text
    first = server.requests[0].body
    if provider == "openai":
        assert first["response_format"]["type"] == "json_schema"
        assert "population" in first["response_format"]["json_schema"]["schema"]["properties"]
    else:
        assert first["tool_choice"] == {"type": "tool", "name": "City"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_structured_reply_that_stays_wrong_raises_a_typed_error(
    server: LoopbackLLMServer, provider: str
) -> None:
    server.always("m1", Step(structured='{"name": "Paris", "population": "many"}'))
    async with make(server, provider) as client:
        with pytest.raises(StructuredOutputError, match="even after a repair") as caught:
            await client.complete("Biggest city?", response_model=City, timeout=5)
    assert "population" in caught.value.errors
    assert caught.value.model == f"{provider}:m1"
    assert isinstance(caught.value, ValueError)
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_call_round_trip_validates_runs_and_returns_the_result(
    server: LoopbackLLMServer, provider: str
) -> None:
    server.script("m1", Step(tool_calls=[("add", {"a": 2, "b": 3})]))
    async with make(server, provider) as client:
        result = await client.complete("What is 2 + 3?", tools=[Tool(add)], timeout=5)
    assert result.text == "tool said: 5"
    assert [(r.name, r.result, r.ok) for r in result.tool_runs] == [("add", "5", True)]
    first, second = server.requests
    offered = first.body["tools"][0]
    if provider == "openai":
        assert offered["function"]["name"] == "add"
        assert offered["function"]["parameters"]["required"] == ["a", "b"]
        assert second.body["messages"][-1]["role"] == "tool"
    else:
        assert offered["input_schema"]["properties"]["a"]["type"] == "integer"
        assert second.body["messages"][-1]["content"][0]["type"] == "tool_result"
    assert client.ledger.total.calls == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unknown_tools_and_invalid_arguments_are_refused_not_called(
    server: LoopbackLLMServer, provider: str
) -> None:
    called: list[tuple[int, int]] = []

    def tracked_add(a: int, b: int) -> int:
        called.append((a, b))
        return a + b

    server.script(
        "m1", Step(tool_calls=[("rm_rf", {"path": "/"}), ("tracked_add", {"a": "two", "b": 3})])
    )
    async with make(server, provider) as client:
        result = await client.complete("add", tools=[Tool(tracked_add)], timeout=5)
    assert called == []
    assert [r.ok for r in result.tool_runs] == [False, False]
    assert "unknown tool 'rm_rf'" in result.tool_runs[0].result
    assert "not valid" in result.tool_runs[1].result
    assert "tool said: error:" in result.text


async def test_a_model_that_keeps_calling_tools_is_stopped_after_max_rounds(
    server: LoopbackLLMServer,
) -> None:
    from actors import ToolError

    server.always("m1", Step(tool_calls=[("add", {"a": 1, "b": 1})]))
    async with make(server, "openai") as client:
        with pytest.raises(ToolError, match="after 2 rounds"):
            await client.complete("loop", tools=[Tool(add)], max_rounds=2, timeout=5)
    assert len(server.requests) == 3


async def test_a_call_over_budget_is_refused_before_any_request(server: LoopbackLLMServer) -> None:
    budget = Budget(max_tokens=50)
    async with make(server, "openai", budget=budget) as client:
        await client.complete("short", max_tokens=16, timeout=5)
        assert budget.spent_tokens == 17
        with pytest.raises(BudgetExceededError, match="budget has 33 tokens") as caught:
            await client.complete("a much longer prompt " * 20, max_tokens=16, timeout=5)
    assert caught.value.remaining == {"tokens": 33, "usd": None}
    assert len(server.requests) == 1
    assert budget.reserved_tokens == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_deadline_shorter_than_the_servers_latency_ends_on_time(
    server: LoopbackLLMServer, provider: str
) -> None:
    server.script("m1", Step(text="too late", delay_s=3.0))
    async with make(server, provider) as client:
        deadline = time.time() + 0.5
        with pytest.raises(DeadlineExceededError, match="ran out of time") as caught:
            await client.complete("slow", deadline=deadline)
        ended = time.time()
    assert ended < deadline + 0.5
    assert caught.value.agent == "tester"
    assert client.ledger.total.calls == 0


async def test_a_malformed_response_body_is_a_provider_error_not_a_crash(
    server: LoopbackLLMServer,
) -> None:
    server.script("m1", Step(raw_body='{"choices": [oops'))
    async with make(server, "openai") as client:
        with pytest.raises(ProviderError):
            await client.complete("hi", timeout=5)


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
async def test_a_missing_api_key_fails_the_agents_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, provider: str, variable: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    agent = LLMAgent(model=f"{provider}:some-model")
    agent.name = "writer-1"
    with pytest.raises(ConfigError, match=variable) as caught:
        await agent.on_start()
    assert caught.value.agent == "writer-1"
    assert "api_key" in (caught.value.hint or "")


async def test_an_api_key_from_the_environment_is_used(
    server: LoopbackLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    async with LLMClient("anthropic:m1", base_url=server.anthropic_url) as client:
        await client.complete("hi", timeout=5)
    headers = server.requests[0].headers
    # Anthropic's SDK sends the key as x-api-key or, in newer versions, as a bearer token.
    assert "from-env" in (headers.get("x-api-key", ""), headers.get("authorization", "")[7:])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4o", "not of the form 'provider:MODEL'"),
        ("mistral:large", "unknown provider 'mistral'"),
        ("openai:", "no valid model name"),
        ("openai:gpt 4o", "no valid model name"),
        ("offline:x?speed=3", "unknown offline option 'speed'"),
        ("offline:x?latency_s=fast", "is not a float"),
        ("openai:gpt-4o?latency_s=1", "only for offline models"),
    ],
)
def test_bad_model_strings_are_config_errors_naming_the_agent(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")) as caught:
        LLMClient(spec, agent="a1", api_key="k")
    assert caught.value.agent == "a1"
