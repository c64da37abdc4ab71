"""`Mesh.run`: `raymesh run` as a library call, on the README's review team."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mesh import DeadlineExceededError, Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TEAM = Path(__file__).parents[2] / "examples" / "review_team.yaml"
MEMBERS = {"lead": "review", "researcher": "review", "archivist": "review/writers",
           "critic": "review/writers", "writer": "review/writers"}  # fmt: skip


async def _gone(mesh: Mesh, names: set[str], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while {info.name for info in await mesh.agents()} & names:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


@pytest.mark.timeout(120)
async def test_run_answers_with_the_result_trace_agents_and_usage_then_stops_the_team(
    mesh: Mesh,
) -> None:
    steps: list[str] = []

    outcome = await mesh.run(TEAM, "raymesh", timeout=60, on_step=steps.append)

    assert (outcome.team, outcome.entry) == ("review", "lead")
    assert outcome.result.text.startswith("On raymesh: ")
    assert outcome.result.data["verdict"] == "approved"
    assert len(outcome.trace_id) == 32
    assert {a.name: a.team for a in outcome.agents} == MEMBERS
    assert all(a.running and a.restarts == 0 and a.handled for a in outcome.agents)
    assert outcome.usage.total.calls == 0  # no model behind this team
    spans = outcome.spans
    assert {s["trace_id"] for s in spans} == {outcome.trace_id}
    assert {s["attributes"]["raymesh.agent"] for s in spans} == set(MEMBERS)
    assert [s["attributes"]["raymesh.agent"] for s in spans if s["parent_span_id"] is None] == [
        "lead"
    ]
    printed = outcome.as_json()  # what `raymesh run --json` prints
    assert printed["result"] == outcome.result.model_dump()
    assert {row["name"] for row in printed["members"]} == set(MEMBERS)
    assert "tokens" not in printed["members"][0]  # no model call: no figure, not a zero
    assert steps == ["starting team 'review'", "lead is working on the task", "stopping the team"]
    assert await _gone(mesh, set(MEMBERS))


@pytest.mark.timeout(120)
async def test_a_run_past_its_deadline_raises_the_typed_error_and_stops_the_team(
    mesh: Mesh,
) -> None:
    with pytest.raises(DeadlineExceededError):
        await mesh.run(TEAM, "raymesh", timeout=0.001)

    assert await _gone(mesh, set(MEMBERS))
