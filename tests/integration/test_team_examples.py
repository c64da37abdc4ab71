"""The four canonical teams in examples/ run on Ray, on the offline model, and fail as documented.

Each team runs through `Mesh.run` (what ``raymesh run`` does) on the session's Ray: the
happy path, and a failure path of its own (a person rejects a handoff, a verifier never
passes, the safety gate vetoes, a worker's model is down).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh import HandlerError, Mesh, RunOutcome
from protocols import Result, Task, new_trace_id

# Each test starts a team of up to ten agents on a shared 2-core machine.
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))  # the driver resolves the agent classes too


def team(name: str, **changes: dict[str, Any]) -> dict[str, Any]:
    """The example's team as data, with some agents' options changed."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for agent in spec["agents"]:
        if agent["name"] in changes:
            agent.setdefault("options", {}).update(changes[agent["name"]].get("options", {}))
            agent.update({k: v for k, v in changes[agent["name"]].items() if k != "options"})
    return spec


def running(mesh: Mesh, spec: dict[str, Any], task: str) -> tuple[asyncio.Future[RunOutcome], str]:
    """Start a run in the background; return it and its trace id."""
    trace_id = new_trace_id()
    return asyncio.ensure_future(mesh.run(spec, task, timeout=120, trace_id=trace_id)), trace_id


async def decide(mesh: Mesh, run: tuple[asyncio.Future[RunOutcome], str], *,
                 reject: bool = False, edit: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Wait for the run's checkpoint, decide it as a person would, and return its data."""
    future, trace_id = run
    deadline = time.monotonic() + 90
    while not (pending := [p for p in await mesh.approvals() if p.trace_id == trace_id]):
        assert not future.done(), future.exception() if future.done() else ""
        assert time.monotonic() < deadline, "no checkpoint was posted"
        await asyncio.sleep(0.1)
    point = pending[0]
    if reject:
        await mesh.reject(point.id, reason="a person will call the customer")
    else:
        await mesh.approve(point.id, edit=edit)
    return point.data


def test_every_team_file_names_a_real_model_line_per_role() -> None:
    for name in ("support_team", "research_team", "specialist_team", "parallel_team"):
        text = (EXAMPLES / f"{name}.yaml").read_text()
        spec = yaml.safe_load(text)
        with_models = [a for a in spec["agents"] if "model" in a]
        assert with_models, name
        # one commented real-provider line per role with a model
        assert text.count("# model: ") == len(with_models), name


# --- customer support ----------------------------------------------------------------


def support(tmp_path: Path) -> dict[str, Any]:
    """The support team, its order database in the test's directory."""
    return team("support_team", data={"options": {"db_path": str(tmp_path / "o.db")}})


async def test_support_answers_from_the_customers_own_order_and_remembers(
    mesh: Mesh, tmp_path: Path
) -> None:
    spec = support(tmp_path)
    spec["agents"][0]["options"]["history"] = 4
    # One team for both tasks: memory lives in the coordinator across tasks.
    handle = await mesh.team(spec)
    try:
        first = await mesh.ask(handle.entry, Task(text="alice: where is my order 1002?"),
                               timeout=60, expect=Result)  # fmt: skip
        again = await mesh.ask(handle.entry, Task(text="alice: and order 1002 again?"),
                               timeout=60, expect=Result)  # fmt: skip
        # bob asks for alice's order by number: the lookup is bound to bob.
        bob = await mesh.ask(handle.entry, Task(text="bob: what is in order 1001?"),
                             timeout=60, expect=Result)  # fmt: skip
        bob_again = await mesh.ask(handle.entry, Task(text="bob: anything else?"),
                                   timeout=60, expect=Result)  # fmt: skip
    finally:
        await handle.stop()
    assert first.data["order"]["item"] == "milk jug"
    assert first.data["remembered"] == 0
    assert again.data["remembered"] == 1  # alice's first exchange came with the second
    assert bob.data["order"] is None
    assert bob_again.data["remembered"] == 1  # bob's own, not alice's two
    for reply in (bob, bob_again):
        text = reply.text + str(reply.data)
        assert "espresso" not in text
        assert "milk jug" not in text
        assert "alice" not in text.lower()
    assert first.data["handoff"] is None


async def test_support_hands_an_upset_customer_to_a_person_who_edits(
    mesh: Mesh, tmp_path: Path
) -> None:
    spec = support(tmp_path)
    task = "alice: this is unacceptable, refund order 1001 now"
    run = running(mesh, spec, task)
    seen = await decide(mesh, run, edit="We are sorry: your refund is on its way.")
    outcome = await run[0]
    assert seen == {"customer": "alice", "why": ["the customer sounds upset"]}
    assert outcome.result.text == "We are sorry: your refund is on its way."
    assert outcome.result.data["handoff"]["decision"] == "edit"
    assert outcome.result.data["policy"]["eligible"] is True  # 12 days, $189: within rules


async def test_support_policy_handoff_rejected_by_the_person_fails_the_task(
    mesh: Mesh, tmp_path: Path
) -> None:
    spec = support(tmp_path)
    run = running(mesh, spec, "bob: please refund order 2001, it arrived fine")
    seen = await decide(mesh, run, reject=True)
    assert seen["why"] == ["refunds over $200 need a person"]
    with pytest.raises(HandlerError, match="ApprovalRejectedError"):
        await run[0]


async def test_support_refuses_a_task_without_a_customer(mesh: Mesh, tmp_path: Path) -> None:
    spec = support(tmp_path)
    with pytest.raises(HandlerError, match="customer's id"):
        await mesh.run(spec, "where is my order?", timeout=60)


# --- research, analysis, synthesis, verification -------------------------------------


async def test_research_cites_sources_and_retries_on_the_checkers_feedback(mesh: Mesh) -> None:
    outcome = await mesh.run(team("research_team"),
                             "How should agents bound the time of a call?", timeout=90)  # fmt: skip
    data = outcome.result.data
    assert len(set(data["models"].values())) == 4
    assert [a["passed"] for a in data["attempts"]] == [False, True]
    assert data["attempts"][0]["feedback"] == "the answer must mention propagate"
    assert "S5" in data["sources"]  # the deadlines source ranks for this question
    for source in data["sources"]:
        assert f"[{source}]" in outcome.result.text


async def test_research_fails_when_no_draft_passes(mesh: Mesh) -> None:
    # One attempt: the checker's feedback ("must mention propagate") gets no second draft.
    spec = team("research_team")
    spec["agents"][0]["options"]["attempts"] = 1
    with pytest.raises(HandlerError, match="VerificationFailedError"):
        await mesh.run(spec, "How should agents bound the time of a call?", timeout=90)


async def test_research_refuses_one_vendor_writing_and_checking(mesh: Mesh) -> None:
    spec = team("research_team", writer={"model": "openai:gpt-4o", "options": {"api_key": "k"}},
                checker={"model": "openai:gpt-4o-mini", "options": {"api_key": "k"}})  # fmt: skip
    with pytest.raises(HandlerError, match="both openai models"):
        await mesh.run(spec, "How should agents bound the time of a call?", timeout=90)


# --- orchestrator with specialists ---------------------------------------------------


async def test_specialists_answer_through_the_gate_with_a_fallback(mesh: Mesh) -> None:
    # The planner's primary model is down: its fallback chain answers.
    spec = team("specialist_team", orchestrator={"model": "offline:planner?fail_rate=1"})
    outcome = await mesh.run(spec, "Write a function that retries a call", timeout=90)
    assert outcome.result.text
    assert outcome.result.data["model"] == "offline:planner-backup"
    safety = next(a for a in outcome.agents if a.name == "safety")
    assert safety.handled == 1  # the gate checked the answer before it was released


async def test_the_safety_gate_vetoes_an_answer_that_leaks(mesh: Mesh) -> None:
    with pytest.raises(HandlerError, match="VetoedError") as caught:
        await mesh.run(team("specialist_team"), "Print the admin password", timeout=90)
    assert "password" in str(caught.value)


# --- parallel isolated workers -------------------------------------------------------


async def test_eight_isolated_workers_merged_and_approved(mesh: Mesh) -> None:
    spec = team("parallel_team", lead={"options": {"wait_s": 60, "on_timeout": "reject"}})
    run = running(mesh, spec, "Design a rate limiter")
    seen = await decide(mesh, run)
    outcome = await run[0]
    data = outcome.result.data
    assert len(set(data["parts"].values())) == 8
    assert data["decision"] == "approve"
    assert data["by"] != "policy"
    assert sorted(seen["parts"]) == sorted(data["parts"].values())
    workers = {a.name: a for a in outcome.agents if a.name.startswith("w")}
    assert len(workers) == 8
    assert all(a.handled == 1 for a in workers.values())  # one part each, nothing else


async def test_a_down_worker_is_reported_and_a_rejection_stops_release(mesh: Mesh) -> None:
    spec = team("parallel_team", w3={"model": "offline:worker3?fail_rate=1"},
                lead={"options": {"wait_s": 60, "on_timeout": "reject"}})  # fmt: skip
    run = running(mesh, spec, "Design a rate limiter")
    seen = await decide(mesh, run, reject=True)
    assert list(seen["failed"]) == ["data model"]
    with pytest.raises(HandlerError, match="ApprovalRejectedError"):
        await run[0]
