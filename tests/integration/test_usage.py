"""Usage and cost attribution across agents, models and traces, from the mesh's API."""

from __future__ import annotations

import pytest
from _agents import Echo
from conftest import Spawn

from actors import Prompt, Reasoner
from mesh import Mesh
from protocols import Result, Task

pytestmark = pytest.mark.ray


async def test_usage_is_totalled_per_agent_model_and_trace(mesh: Mesh, spawn: Spawn) -> None:
    deep = await spawn(Reasoner, "deep", role="reasoner", model="offline:deep")
    quick = await spawn(Reasoner, "quick", role="reasoner", model="offline:quick")
    plain = await spawn(Echo, "plain")  # no model: not part of the usage report
    first, second = "a1" * 16, "b2" * 16
    result = await mesh.ask(deep.name, Task(text="why is the sky blue"), trace_id=first,
                            expect=Result)  # fmt: skip
    assert result.data["model"] == "offline:deep"
    await mesh.ask(quick.name, Prompt(text="and the sea?"), trace_id=first)
    await mesh.ask(quick.name, Prompt(text="unrelated"), trace_id=second)

    report = await mesh.usage(names=[deep.name, quick.name, plain.name])
    assert set(report.by_agent) == {deep.name, quick.name}
    assert report.by_agent[deep.name].calls == 1
    assert report.by_agent[quick.name].calls == 2
    assert set(report.by_model) == {"offline:deep", "offline:quick"}
    assert report.total.calls == 3
    assert report.total.input_tokens == sum(u.input_tokens for u in report.by_agent.values())
    assert report.by_trace[first].calls == 2
    assert report.by_trace[second].calls == 1
    assert report.total.estimated_calls == 3  # the offline model estimates its tokens

    one = await mesh.usage(names=[deep.name, quick.name], trace_id=second)
    assert one.total.calls == 1
    assert set(one.by_agent) == {quick.name}
