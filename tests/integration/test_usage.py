"""Usage and cost attribution across agents, models and traces, from the mesh's API."""

from __future__ import annotations

import asyncio
import io

import pytest
import ray
from _agents import Echo
from conftest import Spawn
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from actors import Prompt, Reasoner
from mesh import Mesh
from mesh.cli import app
from mesh.edge import settled_trace
from mesh.ops._traces import trace_table, trace_usage
from protocols import Result, Task, Usage

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


async def test_cost_is_totalled_per_team_and_shown_by_raymesh_trace_and_status(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = {"offline:": {"input": 2.0, "output": 4.0}}  # dollars per million tokens
    team = await mesh.team({
        "name": "priced", "entry": "priced-lead",
        "agents": [{"name": "priced-lead", "agent": "actors:Reasoner",
                    "model": "offline:lead", "options": {"prices": prices}}],
        "teams": [{"name": "helpers", "agents": [
            {"name": "priced-helper", "agent": "actors:Reasoner", "model": "offline:helper",
             "options": {"prices": prices}}]}],
    })  # fmt: skip
    trace_id = "c0" * 16
    try:
        await mesh.ask("priced-lead", Task(text="plan the work"), trace_id=trace_id)
        await mesh.ask("priced-helper", Prompt(text="help with it"), trace_id=trace_id)
        await mesh.ask("priced-helper", Prompt(text="and more"), trace_id=trace_id)
        report = await mesh.usage(names=["priced-lead", "priced-helper"])
        lead, helper = report.by_agent["priced-lead"], report.by_agent["priced-helper"]
        assert lead.cost_usd > 0
        assert helper.calls == 2
        assert report.by_team["priced"].cost_usd == pytest.approx(report.total.cost_usd)
        assert report.by_team["priced/helpers"] == helper
        assert report.by_model["offline:helper"] == helper
        assert report.by_trace[trace_id].cost_usd == pytest.approx(report.total.cost_usd)

        shown = trace_usage(await settled_trace(mesh, trace_id))  # what `raymesh trace` totals
        assert shown.total.calls == 3
        assert shown.total.cost_usd == pytest.approx(report.total.cost_usd)
        assert shown.by_agent["priced-helper"].cost_usd == pytest.approx(helper.cost_usd)
        assert shown.by_model["offline:lead"].cost_usd == pytest.approx(lead.cost_usd)
        table = _render(trace_table(await mesh.trace(trace_id)))
        assert (
            f"3 model calls, {_tokens(report.total)} tokens, ${report.total.cost_usd:.4f}" in table
        )
        assert f"priced-helper ${helper.cost_usd:.4f}" in table

        stats = await mesh.stats("priced-helper")  # what `raymesh status` shows
        assert stats.models["offline:helper"].cost_usd == pytest.approx(helper.cost_usd)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        gcs = str(ray.get_runtime_context().gcs_address)
        status = await asyncio.to_thread(
            CliRunner(env={"COLUMNS": "200"}).invoke, app, ["status", "--address", gcs]
        )
        assert status.exit_code == 0, status.output
        (row,) = [line for line in status.output.splitlines() if "priced-helper" in line]
        assert row.rstrip(" │").endswith(f"{_tokens(helper)} │ {helper.cost_usd:.4f}")
    finally:
        await team.stop()


def _tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens


def _render(table: Table) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()
