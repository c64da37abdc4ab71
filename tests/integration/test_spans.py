"""Every handled message is an OpenTelemetry span, kept by the mesh for `raymesh trace`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from _agents import Boom, Echo, Relay, Relayer, Seen
from conftest import Spawn
from typer.testing import CliRunner

from actors import Prompt, Reasoner
from actors.loopback import LoopbackLLMServer, Step
from mesh import HandlerError, Mesh
from mesh.cli import app

pytestmark = pytest.mark.ray


async def _spans(mesh: Mesh, trace_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while len(spans := await mesh.trace(trace_id)) < count:
        assert time.monotonic() < deadline, spans
        await asyncio.sleep(0.1)
    return spans


async def test_a_chain_of_three_agents_is_one_trace_of_linked_spans(
    mesh: Mesh, spawn: Spawn
) -> None:
    a, b, c = [await spawn(Relayer, n, role="relay") for n in ("sa", "sb", "sc")]
    trace_id = "7a" * 16
    seen = await mesh.ask(a.name, Relay(route=[b.name, c.name]), trace_id=trace_id, expect=Seen)
    spans = {s["attributes"]["raymesh.agent"]: s for s in await _spans(mesh, trace_id, 3)}
    assert set(spans) == {a.name, b.name, c.name}
    for hop in seen.hops:  # the span ids are the envelopes' own
        assert spans[str(hop["agent"])]["span_id"] == hop["span_id"]
    assert spans[a.name]["parent_span_id"] is None
    assert spans[b.name]["parent_span_id"] == spans[a.name]["span_id"]
    assert spans[c.name]["parent_span_id"] == spans[b.name]["span_id"]
    root = spans[a.name]
    assert root["name"] == f"agent.{a.name} test.relay/1"
    assert root["attributes"]["raymesh.role"] == "relay"
    assert root["attributes"]["raymesh.message.type"] == "test.relay/1"
    assert root["attributes"]["raymesh.message.bytes"] > 0
    assert root["attributes"]["raymesh.outcome"] == "ok"
    assert root["status"] == "UNSET"
    assert (
        root["start_ns"] <= spans[c.name]["start_ns"] <= spans[c.name]["end_ns"] <= root["end_ns"]
    )
    assert await mesh.trace() != []  # --last finds a recent conversation


async def test_a_failed_handler_ends_its_span_with_an_error(mesh: Mesh, spawn: Spawn) -> None:
    echo = await spawn(Echo, "span-boom")
    trace_id = "e1" * 16
    with pytest.raises(HandlerError):
        await mesh.ask(echo.name, Boom(text="bad"), trace_id=trace_id)
    (span,) = await _spans(mesh, trace_id, 1)
    assert span["status"] == "ERROR"
    assert span["attributes"]["raymesh.outcome"] == "HandlerError"
    assert "boom: bad" in span["error"]


async def test_an_api_key_given_to_an_agent_appears_in_no_span_and_no_log(
    mesh: Mesh, spawn: Spawn
) -> None:
    canary = "sk-canary-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    with LoopbackLLMServer() as server:
        server.always("canary-model", Step(text="an answer", delay_s=0.01))
        agent = await spawn(Reasoner, "keyholder", model="openai:canary-model",
                            base_url=server.openai_url, api_key=canary)  # fmt: skip
        trace_id = "ca" * 16
        await mesh.ask(agent.name, Prompt(text="hello"), trace_id=trace_id)
        assert server.requests_for("canary-model")[0].headers["authorization"].endswith(canary)
        (span,) = await _spans(mesh, trace_id, 1)
    assert span["attributes"]["llm.calls"] == 1
    assert span["attributes"]["llm.tokens_in"] > 0
    assert canary not in json.dumps(await mesh.trace(trace_id))
    echo = await spawn(Echo, "keyleaker")  # a handler that fails with the key in its error
    leaked = "cb" * 16
    with pytest.raises(HandlerError):
        await mesh.ask(echo.name, Boom(text=f"key={canary}"), trace_id=leaked)
    (failed,) = await _spans(mesh, leaked, 1)
    assert "boom: key=[redacted]" in failed["error"]
    gcs = str(ray.get_runtime_context().gcs_address)
    for shown_id, shows in ((trace_id, agent.name), (leaked, echo.name)):
        for options in ([], ["--json"]):
            shown = await asyncio.to_thread(
                CliRunner(env={"COLUMNS": "200"}).invoke, app,
                ["trace", shown_id, "--address", gcs, *options],
            )  # fmt: skip
            assert shown.exit_code == 0, shown.output
            assert shows in shown.output  # the trace is there, the key is not
            assert canary not in shown.output
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    leaks = [
        p.name for p in logs.rglob("*") if p.is_file() and canary in p.read_text(errors="ignore")
    ]
    assert leaks == []
