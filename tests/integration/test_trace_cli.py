"""`raymesh trace`: a conversation of a running mesh, or one `raymesh run` saved, as a tree."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
from _agents import Relay, Relayer, Seen
from conftest import Spawn
from typer.testing import CliRunner

from mesh import Mesh
from mesh.cli import app
from mesh.edge import settled_trace
from mesh.ops._traces import save_trace

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).parents[2] / "examples"
_WIDE = {"COLUMNS": "160"}  # rows on one line each


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A raymesh home of the test's own: no `raymesh up` cluster, no saved traces."""
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


def _gcs() -> str:
    return str(ray.get_runtime_context().gcs_address)


async def _cli(*args: str) -> Any:
    # In a thread: the command blocks on Ray calls, and the session's loop must run on.
    return await asyncio.to_thread(CliRunner(env=_WIDE).invoke, app, list(args))


async def test_trace_shows_a_running_meshs_conversation_as_a_tree(
    mesh: Mesh, spawn: Spawn, home: Path
) -> None:
    a, b = [await spawn(Relayer, n) for n in ("ta", "tb")]
    trace_id = "3c" * 16
    await mesh.ask(a.name, Relay(route=[b.name]), trace_id=trace_id, expect=Seen)
    assert len(await settled_trace(mesh, trace_id)) == 2
    shown = await _cli("trace", trace_id, "--address", _gcs())
    assert shown.exit_code == 0, shown.output
    assert f"trace {trace_id}" in shown.output
    rows = [line for line in shown.output.splitlines() if "test.relay/1" in line]
    assert len(rows) == 2
    assert re.search(rf"│ {a.name} test.relay/1 ", rows[0])  # the root, then its child indented
    assert re.search(rf"│   {b.name} test.relay/1 ", rows[1])
    assert all("█" in row and " ok " in row for row in rows)
    raw = await _cli("trace", trace_id, "--json", "--address", _gcs())
    assert raw.exit_code == 0, raw.output
    spans = json.loads(raw.output)
    assert [s["attributes"]["raymesh.agent"] for s in spans] == [a.name, b.name]
    assert spans[1]["parent_span_id"] == spans[0]["span_id"]


async def test_an_unknown_trace_id_is_a_clear_error(mesh: Mesh, home: Path) -> None:
    shown = await _cli("trace", "00" * 16, "--address", _gcs())
    assert shown.exit_code == 1
    assert "no spans are kept for this trace" in shown.output
    assert f"trace={'00' * 16}" in shown.output


def test_with_no_mesh_and_nothing_saved_there_are_no_traces(home: Path) -> None:
    shown = CliRunner(env=_WIDE).invoke(app, ["trace", "--last"])
    assert shown.exit_code == 1
    assert "no traces yet" in shown.output
    assert CliRunner(env=_WIDE).invoke(app, ["trace"]).exit_code == 2  # neither an id nor --last


def test_trace_reads_the_traces_a_run_saved_once_its_mesh_is_gone(home: Path) -> None:
    old = [_span("a1" * 16, "01" * 8, None, "lead", start=0, end=5_000_000)]
    new = [
        _span("b2" * 16, "02" * 8, None, "lead", start=0, end=9_000_000),
        _span(
            "b2" * 16,
            "03" * 8,
            "02" * 8,
            "critic",
            start=1_000_000,
            end=4_000_000,
            error="too long",
        ),
    ]
    save_trace(old)
    os.utime(home / "traces" / f"{'a1' * 16}.json", (1, 1))  # saved long ago
    save_trace(new)
    shown = CliRunner(env=_WIDE).invoke(app, ["trace", "--last"])
    assert shown.exit_code == 0, shown.output
    assert f"trace {'b2' * 16}" in shown.output
    assert "critic review.review/1" in shown.output
    assert "ValueError: too long" in shown.output
    raw = CliRunner(env=_WIDE).invoke(app, ["trace", "a1" * 16, "--json"])
    assert json.loads(raw.output) == old


@pytest.mark.slow
async def test_raymesh_run_prints_its_trace_id_and_raymesh_trace_shows_it(
    mesh: Mesh, home: Path
) -> None:
    env = {**os.environ, "RAYMESH_HOME": str(home), **_WIDE}
    run = await _subprocess("run", str(EXAMPLES / "review_team.yaml"), "--task", "raymesh",
                            "--address", _gcs(), env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    found = re.search(r"trace id: ([0-9a-f]{32})  \(raymesh trace \1\)", run.stdout)
    assert found, run.stdout
    trace_id = found.group(1)
    shown = await _subprocess("trace", trace_id, "--address", _gcs(), env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    agents = [line.split()[1] for line in shown.stdout.splitlines() if "/1 " in line]
    assert agents[0] == "lead"  # the task, then what the lead asked
    assert {"researcher", "writer", "critic", "archivist"} <= set(agents)
    saved = json.loads((home / "traces" / f"{trace_id}.json").read_text())
    assert len(saved) == len(agents)  # the run saved the whole trace for later


async def _subprocess(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "mesh.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _span(
    trace_id: str, span_id: str, parent: str | None, agent: str, *, start: int, end: int,
    error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent,
            "name": f"agent.{agent} review.review/1", "start_ns": start, "end_ns": end,
            "status": "ERROR" if error else "UNSET", "error": error, "events": [],
            "attributes": {"raymesh.agent": agent, "raymesh.message.type": "review.review/1",
                           "raymesh.outcome": "ValueError" if error else "ok"}}  # fmt: skip
