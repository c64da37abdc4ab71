"""Every exit masks secrets: the span store's traces, saved traces, OTLP exports, dead
letters, tool-call log lines, error texts and printed answers (without Ray)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _span_batches import batch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from structlog.testing import capture_logs

from actors import LLMClient, RetryPolicy, Tool
from actors.loopback import LoopbackLLMServer, Step
from mesh.datapath._failures import start_failed
from mesh.errors import ConfigError
from mesh.observability._deadletters import DeadLetterBox
from mesh.observability._export_redaction import RedactingExporter
from mesh.observability._spans import SpanRecord, span_dict
from mesh.observability._spanstore import SpanStore
from mesh.ops import save_trace, saved_trace
from protocols import Envelope, Kind

KEY = "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"
OPAQUE = "opaque-cluster-value-3141"


def _record(trace_id: str = "a" * 32) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id, span_id="b" * 16, parent_span_id=None, name="agent.x t",
        start_ns=1, end_ns=2, status="ERROR", error="failed",
        attributes={"raymesh.agent": "x", "note": f"key {KEY}", "api_key": "anything"},
        events=[{"name": "tool.call", "attributes": {"args": [f"with {OPAQUE}"]}}],
    )  # fmt: skip


def _clean(data: Any) -> bool:
    text = json.dumps(data)
    return KEY not in text and OPAQUE not in text and "anything" not in text


def test_the_span_store_hands_out_traces_redacted_with_the_clusters_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"VENDOR_LICENSE={OPAQUE}\n")
    secrets.chmod(0o600)
    monkeypatch.setenv("RAYMESH_SECRETS_FILE", str(secrets))
    store = SpanStore(capacity=10)
    store.add(batch([_record()]), 1)
    [span] = store.trace("a" * 32)
    assert _clean(span)
    assert span["attributes"]["note"] == "key [redacted]"
    assert span["events"][0]["attributes"]["args"] == ["with [redacted]"]


def test_a_span_store_whose_secrets_file_is_unreadable_still_keeps_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYMESH_SECRETS_FILE", str(tmp_path / "missing.env"))
    store = SpanStore(capacity=10)
    store.add(batch([_record()]), 1)
    assert store.stats()["spans"] == 1


def test_a_saved_trace_is_written_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))
    monkeypatch.setenv("VENDOR_TOKEN", OPAQUE)
    path = save_trace([span_dict(_record("c" * 32).as_row())])
    assert path is not None
    assert _clean(json.loads(path.read_text()))
    assert saved_trace("c" * 32)[0]["attributes"]["api_key"] == "[redacted]"


def test_otlp_exports_carry_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENDOR_TOKEN", OPAQUE)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(memory)))
    with provider.get_tracer("t").start_as_current_span("s", attributes={"k": KEY}) as span:
        span.add_event("tool.call", {"args": f"x {OPAQUE}", "password": "short"})
        span.set_status(Status(StatusCode.ERROR, f"refused {KEY}"))
    [exported] = memory.get_finished_spans()
    assert exported.attributes == {"k": "[redacted]"}
    assert dict(exported.events[0].attributes or {}) == {"args": "x [redacted]",
                                                         "password": "[redacted]"}  # fmt: skip
    assert exported.status.description == "refused [redacted]"
    assert exported.context == span.get_span_context()  # the ids are kept


def test_dead_letters_are_redacted_before_being_cut_and_again_when_handed_out() -> None:
    box = DeadLetterBox("agent-a", capacity=5)
    # Cut at 2000 characters first, the key would lose its tail and its shape with it.
    box.add("handler_crash", None, RuntimeError("x" * 1985 + " " + KEY))
    env = Envelope(kind=Kind.TELL, type=f"t {KEY}", sender="s", recipient="agent-a",
                   payload=b"", trace_id="a" * 32, span_id="b" * 16)  # fmt: skip
    box.add("schema", env, "bad payload")
    cut, typed = box.recent()
    assert "sk-ant" not in cut.error
    assert typed.type == "t [redacted]"


def test_an_agents_start_failure_is_redacted() -> None:
    error = start_failed(ValueError(f"bad key {KEY}"), agent="a", cls=DeadLetterBox)
    assert isinstance(error, ConfigError)
    assert KEY not in str(error)


async def test_a_tool_call_log_line_is_redacted_before_it_is_cut() -> None:
    def note(text: str) -> str:
        """Take a note."""
        return "noted"

    # The key starts 9 characters before the 500th of the logged arguments: cut first,
    # "sk-ant-ap" would be left, too short for a key's shape, and logged as it is.
    text = "x" * 480 + " " + KEY
    with LoopbackLLMServer() as server:
        server.script("m1", Step(tool_calls=[("note", {"text": text})]))
        client = LLMClient("openai:m1", agent="tester", api_key="dummy",
                           base_url=server.openai_url,
                           retry=RetryPolicy(max_attempts=1))  # fmt: skip
        with capture_logs() as logs:
            async with client:
                await client.complete("note it", tools=[Tool(note)], timeout=5)
    [line] = [e for e in logs if e["event"] == "tool call"]
    assert "sk-ant" not in line["arguments"]
    assert line["arguments"].endswith(" [redacted")  # the mask was cut, not the key
