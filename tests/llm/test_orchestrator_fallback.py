"""An orchestrator whose model ignores the plan's JSON schema still gets the task done.

Small local models (behind Ollama or vLLM) often answer a structured request with
prose. The planner here is such a model, on the real openai SDK against the loopback
server: every planning request gets prose, every other request a plain answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Spawn

from actors import Coder, Completion, Orchestrator, Prompt, Reasoner, Router
from actors.loopback import LoopbackLLMServer, Step
from mesh import HandlerError, Mesh
from mesh.edge import settled_trace
from protocols import Result, Task

pytestmark = pytest.mark.ray

PLANNER, CODER, REASONER = "weak-planner", "coder-model", "reasoner-model"
TRACE = "5e" * 16


def _weak_planner(prose: str) -> Any:
    def decide(body: dict[str, Any]) -> Step:
        if "response_format" in body:  # the planning call and its repair
            return Step(text=prose)
        return Step(text="the orchestrator's own answer")

    return decide


@pytest.fixture
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as running:
        running.always(CODER, Step(text="def limit(): ...  # the coder's answer"))
        running.always(REASONER, Step(text="Answer: the reasoner's answer"))
        yield running


def _llm(server: LoopbackLLMServer, model: str) -> dict[str, Any]:
    name = f"openai:{model}"
    return {"router": Router(default=name), "base_urls": {name: server.openai_url},
            "api_keys": {name: "dummy"}}  # fmt: skip


async def _team(spawn: Spawn, server: LoopbackLLMServer, **options: Any) -> str:
    await spawn(Coder, "coder", role="coder", **_llm(server, CODER))
    await spawn(Reasoner, "reasoner", role="reasoner", **_llm(server, REASONER))
    lead = await spawn(Orchestrator, "lead", role="orchestrator", **_llm(server, PLANNER),
                       **options)  # fmt: skip
    return lead.name


async def test_an_unusable_plan_sends_the_task_to_the_role_the_reply_names(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    server.respond_with(PLANNER, _weak_planner("Sure! First the coder writes it, then done."))
    lead = await _team(spawn, server)
    reply = await mesh.ask(lead, Prompt(text="Write a rate limiter"), timeout=20,
                           trace_id=TRACE, expect=Completion)  # fmt: skip
    assert reply.text == "def limit(): ...  # the coder's answer"
    assert reply.model == f"openai:{CODER}"
    assert reply.planning_failed is not None
    assert reply.planning_failed.startswith("StructuredOutputError: ")
    assert len(server.requests_for(PLANNER)) == 2  # the plan and its repair, no assembly
    assert len(server.requests_for(REASONER)) == 0
    spans = await settled_trace(mesh, TRACE)
    events = [e for span in spans if span["attributes"].get("raymesh.agent") == lead
              for e in span["events"] if e["name"] == "orchestrator.planning_failed"]  # fmt: skip
    assert [e["attributes"]["role"] for e in events] == ["coder"]


async def test_an_unusable_plan_naming_no_role_is_answered_by_the_orchestrator(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    server.respond_with(PLANNER, _weak_planner("I cannot produce JSON, sorry."))
    lead = await _team(spawn, server)
    result = await mesh.ask(lead, Task(text="Write a rate limiter"), timeout=20, expect=Result)
    assert result.text == "the orchestrator's own answer"
    assert str(result.data["planning_failed"]).startswith("StructuredOutputError: ")
    assert server.requests_for(CODER) == server.requests_for(REASONER) == []


async def test_strict_planning_fails_the_task_with_the_structured_output_error(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    server.respond_with(PLANNER, _weak_planner("Sure! First the coder writes it."))
    lead = await _team(spawn, server, strict_planning=True)
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(lead, Prompt(text="Write a rate limiter"), timeout=20)
    assert caught.value.remote_type == "StructuredOutputError"
    assert "even after a repair" in str(caught.value)
    assert server.requests_for(CODER) == []
