"""Log lines written inside a trace scope carry its trace, span and agent."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

from mesh.observability._logging import trace_context, trace_scope


def test_trace_scope_binds_and_unbinds_the_trace_context() -> None:
    with trace_scope(agent="a", trace_id="t" * 32, span_id="s" * 16):
        assert trace_context() == {"agent": "a", "trace_id": "t" * 32, "span_id": "s" * 16}
        with trace_scope(agent="b", trace_id="u" * 32, span_id="v" * 16):
            assert trace_context()["agent"] == "b"
        assert trace_context()["agent"] == "a"
    assert trace_context() == {}


async def test_concurrent_handlers_do_not_see_each_others_trace() -> None:
    seen: dict[str, str] = {}

    async def handle(name: str) -> None:
        with trace_scope(agent=name, trace_id=name * 32, span_id=name * 16):
            await asyncio.sleep(0)  # let the other task run inside its own scope
            seen[name] = trace_context()["trace_id"]

    await asyncio.gather(handle("a"), handle("b"))
    assert seen == {"a": "a" * 32, "b": "b" * 32}


def test_json_log_lines_carry_trace_span_and_agent() -> None:
    script = textwrap.dedent(
        """
        from mesh.observability._logging import configure_logging, get_logger, trace_scope
        configure_logging(fmt="json", level="info")
        with trace_scope(agent="critic", trace_id="ab" * 16, span_id="cd" * 8):
            get_logger().info("reviewed", verdict="ok")
        get_logger().debug("filtered out at info level")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    assert lines[0]["event"] == "reviewed"
    assert lines[0]["agent"] == "critic"
    assert lines[0]["trace_id"] == "ab" * 16
    assert lines[0]["span_id"] == "cd" * 8
    assert lines[0]["verdict"] == "ok"
    assert lines[0]["level"] == "info"
