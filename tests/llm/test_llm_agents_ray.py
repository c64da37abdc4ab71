"""LLM agents on a real local Ray: offline, against the loopback server, and as a team."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import Spawn

from actors import (
    Coder,
    Completion,
    LLMAgent,
    Orchestrator,
    Prompt,
    Reasoner,
    Retriever,
    Router,
    Verdict,
    Verifier,
    Verify,
)
from actors.loopback import LoopbackLLMServer, Step
from mesh import ConfigError, Mesh
from protocols import UsageQuery, UsageSummary

pytestmark = pytest.mark.ray

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as running:
        yield running


async def test_an_offline_agent_answers_a_prompt_and_reports_its_usage(
    mesh: Mesh, spawn: Spawn
) -> None:
    agent = await spawn(LLMAgent, "llm", role="generalist", budget={"max_tokens": 10_000})
    reply = await mesh.ask(
        agent.name, Prompt(text="What is a mesh?"), trace_id=TRACE, timeout=10, expect=Completion
    )
    assert reply.model == "offline:default"
    assert "What is a mesh" in reply.text
    assert reply.usage.calls == 1
    assert reply.usage.estimated
    report = await mesh.ask(agent.name, UsageQuery(), timeout=10, expect=UsageSummary)
    assert report.agent == agent.name
    assert report.by_trace[TRACE].calls == 1
    assert report.total.tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert report.budget_remaining["tokens"] == 10_000 - report.total.tokens


async def test_a_role_agent_calls_the_openai_sdk_against_the_loopback_server(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    model = "openai:loopback-model"
    server.script("loopback-model", Step(text="Answer: 42", usage=(30, 4)))
    agent = await spawn(
        Reasoner,
        "reasoner",
        role="reasoner",
        router=Router(default=model),
        base_urls={model: server.openai_url},
        api_keys={model: "dummy"},
    )
    reply = await mesh.ask(
        agent.name, Prompt(text="6 times 7?"), trace_id=TRACE, timeout=10, expect=Completion
    )
    assert (reply.text, reply.model) == ("Answer: 42", model)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (30, 4)
    assert not reply.usage.estimated
    sent = server.requests_for("loopback-model")[0].body["messages"]
    assert sent[0]["role"] == "system"
    assert "step by step" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "6 times 7?"}
    report = await mesh.ask(agent.name, UsageQuery(), timeout=10, expect=UsageSummary)
    assert report.by_model[model].calls == 1
    assert report.by_trace[TRACE].calls == 1


async def test_an_agent_without_its_api_key_fails_to_spawn_naming_the_variable(
    mesh: Mesh, spawn: Spawn
) -> None:
    if os.environ.get("ANTHROPIC_API_KEY"):
        pytest.skip("ANTHROPIC_API_KEY is set in this environment")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY") as caught:
        await spawn(LLMAgent, "keyless", router=Router(default="anthropic:claude-haiku-4-5"))
    assert caught.value.agent is not None
    assert caught.value.agent.startswith("keyless")


async def test_an_orchestrator_plans_delegates_to_peers_by_role_and_assembles(
    mesh: Mesh, spawn: Spawn, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("retriever") / "docs.db"
    corpus = ["raymesh agents are Ray actors.", "Every ask in raymesh has a deadline."]
    coder = await spawn(Coder, "coder", role="coder")
    retriever = await spawn(
        Retriever, "retriever", role="retriever", corpus=corpus, db_path=str(db)
    )
    lead = await spawn(Orchestrator, "lead", role="orchestrator")
    reply = await mesh.ask(
        lead.name, Prompt(text="Explain deadlines in raymesh"), timeout=15, expect=Completion
    )
    assert reply.text
    assert reply.usage.calls == 2  # the plan and the assembly; the peers count their own
    peer_calls = [
        (await mesh.ask(p.name, UsageQuery(), timeout=10, expect=UsageSummary)).total.calls
        for p in (coder, retriever)
    ]
    assert sum(peer_calls) >= 1  # the plan's steps went to peers chosen by role


async def test_a_verifier_checks_ground_truth_exactly_and_rules_with_the_model(
    mesh: Mesh, spawn: Spawn
) -> None:
    verifier = await spawn(Verifier, "verifier", role="verifier")
    good = await mesh.ask(
        verifier.name,
        Verify(answer="The answer is 42.", ground_truth="42", rules=["be polite"]),
        timeout=10,
        expect=Verdict,
    )
    assert good.passed
    assert len(good.reasons) >= 2
    bad = await mesh.ask(
        verifier.name,
        Verify(answer="The key is sk-123", ground_truth="42", forbidden=[r"sk-\d+"]),
        timeout=10,
        expect=Verdict,
    )
    assert not bad.passed
    assert any("forbidden" in r for r in bad.reasons)
