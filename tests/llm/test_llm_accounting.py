"""Prices, the usage ledger, budgets, the breaker, backoff, routing and tools, without I/O."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from actors import (
    Budget,
    BudgetExceededError,
    CircuitBreaker,
    LLMClient,
    ModelUnavailableError,
    PriceTable,
    RetryPolicy,
    RoutedClient,
    Router,
    RouteRule,
    Tool,
    Toolbox,
    ToolError,
    UsageLedger,
    UsageRecord,
    reset_breakers,
)
from actors.breaker import BreakerState
from actors.providers import ToolCall
from mesh import ConfigError, MeshError

FAST = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002)


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    reset_breakers()


def record(agent: str, model: str, trace: str, tokens: int, cost: float) -> UsageRecord:
    return UsageRecord(
        agent=agent, model=model, trace_id=trace, input_tokens=tokens, output_tokens=1,
        estimated=False, latency_s=0.1, cost_usd=cost,
    )  # fmt: skip


def test_dated_snapshots_are_priced_by_their_family() -> None:
    table = PriceTable()
    assert table.price("anthropic:claude-sonnet-4-20250514") == table.price(
        "anthropic:claude-sonnet-4"
    )
    assert table.cost("openai:gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert table.price("openai:unknown-model") is None
    assert table.cost("openai:unknown-model", 1000, 1000) == 0.0


def test_prices_can_be_overridden_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("openai:gpt-4o:\n  input: 1.0\n  output: 4.0\n", encoding="utf-8")
    table = PriceTable.from_yaml(path)
    assert table.cost("openai:gpt-4o", 1_000_000, 1_000_000) == pytest.approx(5.0)
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        PriceTable.from_yaml(path)
    with pytest.raises(ConfigError, match="not usable"):
        PriceTable({"openai:x": {"input": -1, "output": 1}})


def test_the_ledger_aggregates_per_agent_trace_and_model_and_round_trips() -> None:
    ledger = UsageLedger(max_records=2)
    ledger.record(record("a", "openai:m", "t1", 10, 0.01))
    ledger.record(record("a", "anthropic:n", "t2", 20, 0.02))
    ledger.record(record("b", "openai:m", "t1", 30, 0.03))
    assert ledger.total.calls == 3
    assert ledger.by_agent["a"].input_tokens == 30
    assert ledger.by_trace["t1"].cost_usd == pytest.approx(0.04)
    assert ledger.by_model["openai:m"].tokens == 42
    assert len(ledger.records) == 2  # totals stay exact beyond the records kept
    again = UsageLedger.model_validate_json(ledger.model_dump_json())
    assert again == ledger
    team = UsageLedger()
    team.merge(ledger)
    team.merge(ledger)
    assert team.by_agent["b"].calls == 2


def test_a_budget_reserves_settles_and_travels_as_plain_numbers() -> None:
    budget = Budget(max_tokens=100, max_usd=1.0)
    held = budget.reserve(tokens=60, usd=0.5)
    with pytest.raises(BudgetExceededError, match=r"40 tokens / \$0.5000 left") as caught:
        budget.reserve(tokens=50, usd=0.1, model="openai:m", agent="a")
    assert caught.value.needed == {"tokens": 50, "usd": 0.1}
    budget.settle(held, tokens=70, usd=0.2)
    assert budget.remaining() == {"tokens": 30, "usd": pytest.approx(0.8)}
    assert budget.fraction_left() == pytest.approx(0.3)
    rebuilt = Budget.from_remaining(**budget.remaining())  # type: ignore[arg-type]
    assert rebuilt.remaining() == budget.remaining()
    wire = BudgetExceededError.from_wire(caught.value.to_wire())
    assert isinstance(wire, BudgetExceededError)
    assert wire.needed == caught.value.needed


def test_the_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("m", failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(ModelUnavailableError) as caught:
        breaker.before_call()
    assert caught.value.retry_in == pytest.approx(10)
    now[0] = 10.0
    breaker.before_call()  # the probe
    with pytest.raises(ModelUnavailableError):
        breaker.before_call()  # only one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # a failed probe re-opens at once
    now[0] = 20.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.stats().opened == 2


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    rng = random.Random(3)
    waits = [policy.backoff(n, rng=rng) for n in (1, 2, 3, 4, 5)]
    for wait, raw in zip(waits, (1, 2, 4, 5, 5), strict=True):
        assert raw * 0.5 <= wait <= raw


def test_the_router_picks_by_role_and_prompt_size_then_cheapest_when_budget_is_low() -> None:
    router = Router(
        default="openai:gpt-4o",
        rules=[
            RouteRule(role="coder", model="anthropic:claude-sonnet-4-5"),
            RouteRule(min_prompt_tokens=1000, model="openai:gpt-4.1"),
        ],
        fallback=["openai:gpt-4o-mini"],
    )
    assert router.chain(role="coder") == ["anthropic:claude-sonnet-4-5", "openai:gpt-4o-mini"]
    assert router.chain(prompt_tokens=5000)[0] == "openai:gpt-4.1"
    assert router.chain() == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert router.chain(budget_fraction=0.05) == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    assert router.models()[0] == "openai:gpt-4o"


async def test_the_routed_client_falls_back_when_the_primary_model_is_down() -> None:
    router = Router(default="offline:down", fallback=["offline:up"])
    client = RoutedClient(
        router, agent="a", retry=FAST, options={"offline:down": {"fail_first_n": 1000}}
    )
    result = await client.complete("hi", timeout=5)
    assert result.model == "offline:up"
    assert set(client.ledger.by_model) == {"offline:up"}


async def test_the_routed_client_reports_every_model_failing() -> None:
    router = Router(default="offline:a", fallback=["offline:b"])
    options = {"offline:a": {"fail_first_n": 99}, "offline:b": {"fail_first_n": 99}}
    client = RoutedClient(router, agent="x", retry=FAST, options=options)
    with pytest.raises(ModelUnavailableError, match=r"every model of the chain failed"):
        await client.complete("hi", timeout=5)


async def test_the_routed_client_falls_back_to_a_model_that_fits_the_budget() -> None:
    router = Router(default="openai:gpt-4o", fallback=["offline:cheap"], low_budget_fraction=0)
    budget = Budget(max_usd=0.000001)
    client = RoutedClient(router, api_keys={"openai:gpt-4o": "k"}, budget=budget)
    result = await client.complete("hello " * 50, timeout=5)
    assert result.model == "offline:cheap"


def test_tool_schemas_come_from_type_hints_and_bad_tools_are_config_errors() -> None:
    def search(query: str, limit: int = 5, exact: bool = False) -> list[str]:
        """Search the notes.

        Longer description that is not offered.
        """
        return []

    spec = Tool(search).spec()
    assert spec.description == "Search the notes."
    assert spec.parameters["required"] == ["query"]
    assert spec.parameters["properties"]["limit"]["default"] == 5

    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ConfigError, match="needs a type hint"):
        Tool(untyped)
    with pytest.raises(ConfigError, match="two tools"):
        Toolbox([search, search])


async def test_tool_arguments_are_validated_before_the_call() -> None:
    async def lookup(key: str) -> str:
        return key.upper()

    box = Toolbox([lookup])
    assert await box.run(ToolCall(call_id="1", name="lookup", arguments='{"key": "x"}')) == "X"
    with pytest.raises(ToolError, match="not valid"):
        await box.run(ToolCall(call_id="2", name="lookup", arguments='{"key": "x", "rm": 1}'))
    with pytest.raises(ToolError, match="not valid"):
        await box.run(ToolCall(call_id="3", name="lookup", arguments="not json"))


def test_model_errors_are_mesh_errors_that_survive_the_wire() -> None:
    error = ModelUnavailableError("down", model="openai:m", retry_in=3.0, agent="a")
    again = MeshError.from_wire(error.to_wire())
    assert isinstance(again, ModelUnavailableError)
    assert (again.model, again.retry_in, again.agent) == ("openai:m", 3.0, "a")


def test_a_client_needs_no_key_for_offline_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert LLMClient("offline:default").model_id == "offline:default"
