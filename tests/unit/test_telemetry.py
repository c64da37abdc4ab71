"""Span records, the trace view and secret redaction, without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mesh.ops import _traces as traceview
from mesh.ops._traces import save_trace, saved_trace, trace_table
from mesh.security._redaction import redact


def _span(agent: str, span_id: str, parent: str | None, start: int, end: int,
          **attrs: Any) -> dict[str, Any]:  # fmt: skip
    return {"trace_id": "ab" * 16, "span_id": span_id, "parent_span_id": parent,
            "name": f"agent.{agent} t/1", "start_ns": start, "end_ns": end,
            "status": "ERROR" if attrs.get("raymesh.outcome", "ok") != "ok" else "UNSET",
            "error": "boom" if attrs.get("raymesh.outcome", "ok") != "ok" else None,
            "attributes": {"raymesh.agent": agent, "raymesh.message.type": "t/1",
                           "raymesh.outcome": "ok", **attrs}, "events": []}  # fmt: skip


def test_the_trace_view_shows_the_tree_in_order_with_tokens_and_errors() -> None:
    spans = [
        _span("critic", "c" * 16, "b" * 16, 3_000_000, 4_000_000,
              **{"raymesh.outcome": "HandlerError"}),
        _span("lead", "a" * 16, None, 0, 10_000_000),
        _span("writer", "b" * 16, "a" * 16, 1_000_000, 8_000_000,
              **{"llm.tokens_in": 30, "llm.tokens_out": 12, "llm.cost_usd": 0.0021}),
        _span("researcher", "d" * 16, "a" * 16, 500_000, 900_000),
    ]  # fmt: skip
    console = Console(record=True, width=160)
    console.print(trace_table(spans))
    text = console.export_text()
    lines = [line for line in text.splitlines() if "t/1" in line]
    assert [line.split()[1] for line in lines] == ["lead", "researcher", "writer", "critic"]
    assert "  researcher" in lines[1]  # a child is indented under its parent
    assert "    critic" in lines[3]  # a grandchild twice
    assert "42" in lines[2]
    assert "0.0021" in lines[2]
    assert "HandlerError: boom" in lines[3]
    assert "10.0 ms" in text


def test_saved_traces_keep_only_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))
    monkeypatch.setattr(traceview, "KEEP_SAVED", 2)
    traces = [[{**_span("lead", "a" * 16, None, 0, 1), "trace_id": f"{i:032x}"}] for i in range(3)]
    for age, spans in enumerate(traces):
        path = save_trace(spans)
        assert path is not None
        os.utime(path, (age, age))  # saved one after the other
    assert saved_trace(f"{0:032x}") == []  # the oldest went
    assert saved_trace(f"{1:032x}") == traces[1]
    assert saved_trace(None) == traces[2]
    assert saved_trace("../" + f"{1:032x}") == []  # an id is never a path


def test_redact_hides_key_like_strings_and_the_environments_keys() -> None:
    assert redact("key sk-abcdefghijklmnop used") == "key [redacted] used"
    script = textwrap.dedent(
        """
        import os
        os.environ["MY_SERVICE_TOKEN"] = "plain-words-secret"
        from mesh.observability._spans import redact
        print(redact("the token is plain-words-secret"))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "the token is [redacted]"


def test_redact_follows_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    redact("warm the list of known secrets")
    monkeypatch.setenv("LATE_API_KEY", "first value 123")
    assert redact("got first value 123") == "got [redacted]"
    monkeypatch.setenv("LATE_API_KEY", "second value 456")  # same number of variables
    assert redact("got second value 456") == "got [redacted]"
    monkeypatch.delenv("LATE_API_KEY")
    assert redact("got second value 456") == "got second value 456"


def test_log_lines_never_carry_a_key_from_the_environment() -> None:
    script = textwrap.dedent(
        """
        import os
        os.environ["OPENAI_API_KEY"] = "canary-key-123456"
        from mesh.observability._logging import configure_logging, get_logger
        configure_logging(fmt="json")
        get_logger().info("calling", header="Bearer canary-key-123456", other="sk-live-abcdefghij")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert "canary-key-123456" not in done.stderr
    assert line["header"] == "Bearer [redacted]"
    assert line["other"] == "[redacted]"
