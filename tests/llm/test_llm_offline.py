"""The offline model: deterministic, shaped like a model's answers, and failing on demand."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel, Field

from actors import (
    LLMClient,
    ModelUnavailableError,
    Plan,
    RetryPolicy,
    Tool,
    reset_breakers,
)
from mesh import DeadlineExceededError

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.002)


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    reset_breakers()


class Review(BaseModel):
    score: int = Field(ge=0, le=10)
    verdict: str
    issues: list[str]
    approved: bool
    tone: str = Field(json_schema_extra={"enum": ["kind", "blunt"]})


def multiply(x: float, y: float) -> float:
    """Multiply two numbers."""
    return x * y


async def test_the_same_prompt_gets_the_same_answer() -> None:
    a = await LLMClient("offline:default").complete("Name a colour.", timeout=5)
    b = await LLMClient("offline:default").complete("Name a colour.", timeout=5)
    c = await LLMClient("offline:other").complete("Name a colour.", timeout=5)
    assert a.text == b.text
    assert a.text != c.text
    assert "Name a colour" in a.text


@pytest.mark.parametrize(
    ("system", "shape"),
    [
        ("You plan tasks.", "1. "),
        ("You critique drafts.", "Critique of:"),
        ("You are a verifier; give a verdict.", "VERDICT: PASS"),
        ("You write code.", "```python\ndef "),
        ("You reason step by step.", "Answer:"),
    ],
)
async def test_role_prompts_are_answered_in_the_expected_shape(system: str, shape: str) -> None:
    result = await LLMClient("offline:default").complete(
        "sort a list of numbers", system=system, timeout=5
    )
    assert shape in result.text


async def test_structured_output_conforms_to_the_requested_schema() -> None:
    result = await LLMClient("offline:default").complete(
        "Review this draft", response_model=Review, timeout=5
    )
    assert isinstance(result.parsed, Review)
    assert result.parsed.tone in ("kind", "blunt")
    assert json.loads(result.text)["issues"]
    plan = await LLMClient("offline:default").complete("Ship it", response_model=Plan, timeout=5)
    assert len(plan.parsed.steps) >= 1


async def test_tools_are_called_when_the_prompt_asks_and_their_result_is_used() -> None:
    result = await LLMClient("offline:default").complete(
        "Use multiply on 6 and 7", tools=[Tool(multiply)], timeout=5
    )
    assert [(r.name, r.result) for r in result.tool_runs] == [("multiply", "42.0")]
    assert "42.0" in result.text


async def test_tools_are_not_called_when_the_prompt_does_not_ask() -> None:
    result = await LLMClient("offline:default").complete(
        "Say hello", tools=[Tool(multiply)], timeout=5
    )
    assert result.tool_runs == []


async def test_usage_is_estimated_and_marked_so() -> None:
    client = LLMClient("offline:default", agent="a")
    await client.complete("four words right here", timeout=5)
    record = client.ledger.records[0]
    assert record.estimated
    assert record.input_tokens > 0
    assert record.output_tokens > 0
    assert record.cost_usd == 0.0
    assert client.ledger.total.estimated_calls == 1


async def test_configured_failures_are_retried_until_they_stop() -> None:
    client = LLMClient("offline:flaky?fail_first_n=2", retry=FAST)
    result = await client.complete("hi", timeout=5)
    assert result.text
    assert client.provider.calls == 3  # type: ignore[attr-defined]
    assert client.ledger.total.calls == 1


async def test_a_model_that_always_fails_becomes_unavailable() -> None:
    client = LLMClient("offline:down", retry=FAST, fail_first_n=1000)
    with pytest.raises(ModelUnavailableError, match="3 times in a row"):
        await client.complete("hi", timeout=5)


async def test_a_slow_offline_model_hits_the_deadline_on_time() -> None:
    client = LLMClient("offline:slow?latency_s=5")
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        await client.complete("hi", timeout=0.3)
    assert time.monotonic() - started < 3.0  # the model takes 5 s


async def test_fail_rate_is_repeatable_with_the_same_seed() -> None:
    def outcomes(seed: int) -> list[bool]:
        from actors.providers.offline import OfflineProvider

        provider = OfflineProvider("x", fail_rate=0.5, seed=seed)
        return [provider._rng.random() < 0.5 for _ in range(20)]

    assert outcomes(1) == outcomes(1)
    assert outcomes(1) != outcomes(2)


async def test_tools_and_a_response_model_together_end_in_a_validated_answer() -> None:
    result = await LLMClient("offline:default").complete(
        "Use multiply on 3 and 4", tools=[Tool(multiply)], response_model=Review, timeout=5
    )
    assert [r.result for r in result.tool_runs] == ["12.0"]
    assert isinstance(result.parsed, Review)
    roles = [m.role for m in result.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]
