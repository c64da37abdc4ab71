"""Each pattern's example team file loads and runs on Ray, on the offline model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mesh import Mesh
from mesh.control._team import load_team
from protocols import Result, Task, new_trace_id
from protocols.patterns import Checkpoint

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EXAMPLES = Path(__file__).parents[2] / "examples"

#: Example file -> what its typed result must show.
EXPECTED: dict[str, dict[str, Any]] = {
    "hub.yaml": {"spokes": {"researcher": "researcher", "coder": "coder"},
                 "assembled_by": "lead", "failed": {}},
    "pipeline.yaml": {"stages": ["outliner", "writer", "editor"]},
    "mesh_review.yaml": {"drafts": {"ana": ["ben", "cleo"], "ben": ["ana", "cleo"],
                                    "cleo": ["ana", "ben"]}, "assembler": "ana"},
    "debate.yaml": {"rounds": 2, "consensus": False, "judge": "referee"},
    "delegation.yaml": {"integrator": "lead", "reassigned": {}},
    "race.yaml": {"winner": "hare", "cancelled": ["snail", "tortoise"], "lost": {}},
    "verify_retry.yaml": {"attempts": 2, "feedback": ["the answer must mention deadline"]},
    "approval.yaml": {"decision": "edit", "by_policy": False, "executor": "publisher"},
}  # fmt: skip


async def _checkpoint(mesh: Mesh, trace_id: str) -> Checkpoint:
    deadline = time.monotonic() + 60
    while not (found := [p for p in await mesh.approvals() if p.trace_id == trace_id]):
        assert time.monotonic() < deadline, "no checkpoint was posted"
        await asyncio.sleep(0.1)
    return found[0]


def test_every_pattern_has_an_example() -> None:
    assert set(EXPECTED) == {"hub.yaml", "pipeline.yaml", "mesh_review.yaml", "debate.yaml",
                             "delegation.yaml", "race.yaml", "verify_retry.yaml",
                             "approval.yaml"}  # fmt: skip
    for name in EXPECTED:
        spec = load_team(EXAMPLES / name)
        assert spec.pattern is not None
        assert spec.entry == "conductor"


@pytest.mark.parametrize("example", sorted(EXPECTED))
async def test_the_example_runs_and_reports_who_did_what(mesh: Mesh, example: str) -> None:
    team = await mesh.team(EXAMPLES / example)
    trace_id = new_trace_id()
    try:
        asking = asyncio.ensure_future(
            mesh.ask(
                team.entry,
                Task(text="Plan the raymesh 1.0 release"),
                timeout=90,
                trace_id=trace_id,
                expect=Result,
            )
        )
        if example == "approval.yaml":  # a person edits the proposal while the run waits
            await mesh.approve((await _checkpoint(mesh, trace_id)).id, edit="Plan it with care")
        result = await asking
    finally:
        await team.stop()
    assert result.text
    assert result.data["pattern"] == load_team(EXAMPLES / example).pattern.name  # type: ignore[union-attr]
    for key, value in EXPECTED[example].items():
        assert result.data[key] == value, key
