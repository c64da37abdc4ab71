"""``raymesh trace``: one conversation as a tree of handled messages with timing bars.

The spans come from the span store of a running mesh, or, once the mesh is gone (a
``raymesh run`` on a local Ray ends with it), from the copy the run saved under the
raymesh home (``$RAYMESH_HOME/traces``; the newest `KEEP_SAVED` are kept). A trace is
redacted before it is written: the file outlives the run and its secrets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from mesh.config import raymesh_home
from mesh.observability import UsageReport
from mesh.security import private_dir, redact_data, write_private
from protocols import Usage

__all__ = [
    "KEEP_SAVED",
    "save_trace",
    "saved_trace",
    "trace_table",
    "trace_usage",
]

KEEP_SAVED = 100
_BAR = 30


def _saved_dir() -> Path:
    return raymesh_home() / "traces"


def save_trace(spans: Sequence[dict[str, Any]]) -> Path | None:
    """Keep a trace's spans under the raymesh home, for `raymesh trace` after the mesh ends."""
    if not spans:
        return None
    folder = private_dir(_saved_dir())  # prompts and answers are in the spans
    path = write_private(
        folder / f"{spans[0]['trace_id']}.json", json.dumps(redact_data(list(spans)))
    )
    for old in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP_SAVED]:
        old.unlink(missing_ok=True)
    return path


def saved_trace(trace_id: str | None) -> list[dict[str, Any]]:
    """Return a saved trace's spans (the newest saved when `trace_id` is None), or none."""
    folder = _saved_dir()
    if trace_id is None:
        saved = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not saved:
            return []
        path = saved[-1]
    else:
        path = folder / f"{trace_id}.json"
        if path.parent != folder or not path.is_file():  # an id is never a path
            return []
    spans: list[dict[str, Any]] = json.loads(path.read_text())
    return spans


def _ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    # Depth-first from the roots, children in start order: the conversation as it ran.
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[tuple[int, dict[str, Any]]] = []
    stack = [(0, s) for s in sorted(children.get(None, []), key=lambda s: -s["start_ns"])]
    while stack:
        depth, span = stack.pop()
        rows.append((depth, span))
        kids = sorted(children.get(span["span_id"], []), key=lambda s: -s["start_ns"])
        stack.extend((depth + 1, kid) for kid in kids)
    return rows


def trace_usage(spans: list[dict[str, Any]]) -> UsageReport:
    """Total a trace's model calls from its spans: in all, per agent and per model."""
    report = UsageReport()
    for span in spans:
        for event in span["events"]:
            if event["name"] != "llm.call":
                continue
            call = event["attributes"]
            usage = Usage(calls=1, input_tokens=call["tokens_in"],
                          output_tokens=call["tokens_out"], cost_usd=call["cost_usd"])  # fmt: skip
            agent = span["attributes"].get("raymesh.agent", "?")
            for total in (report.total, report.by_agent.setdefault(agent, Usage()),
                          report.by_model.setdefault(call["model"], Usage()),
                          report.by_trace.setdefault(span["trace_id"], Usage())):  # fmt: skip
                total.add(usage)
    return report


def _caption(usage: UsageReport) -> str:
    total = usage.total
    if total.calls == 0:
        return "no model calls"
    per_agent = ", ".join(f"{agent} ${u.cost_usd:.4f}" for agent, u in usage.by_agent.items())
    per_model = ", ".join(f"{model} ${u.cost_usd:.4f}" for model, u in usage.by_model.items())
    tokens = total.input_tokens + total.output_tokens
    return (f"{total.calls} model calls, {tokens} tokens, ${total.cost_usd:.4f} in all\n"
            f"by agent: {per_agent}\nby model: {per_model}")  # fmt: skip


def trace_table(spans: list[dict[str, Any]]) -> Table:
    """Return the spans of one trace as a table: tree, timing bar, duration, tokens, cost.

    Its caption totals the trace's model calls, tokens and cost, per agent and model.
    """
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    width = max(end - start, 1)
    table = Table(
        title=f"trace {spans[0]['trace_id']}  ({width / 1e6:.1f} ms)",
        caption=_caption(trace_usage(spans)),
        caption_justify="left",
    )
    table.add_column("agent / message", overflow="fold")
    table.add_column("timeline", min_width=_BAR, no_wrap=True)  # the bars must stay whole
    for column in ("ms", "tokens", "cost $"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("outcome", overflow="fold")
    for depth, span in _ordered(spans):
        attrs = span["attributes"]
        left = round((span["start_ns"] - start) / width * _BAR)
        length = max(1, round((span["end_ns"] - span["start_ns"]) / width * _BAR))
        failed = span["status"] == "ERROR"
        bar = Text(" " * left + "█" * length, style="red" if failed else "cyan")
        tokens = int(attrs.get("llm.tokens_in", 0)) + int(attrs.get("llm.tokens_out", 0))
        cost = attrs.get("llm.cost_usd")
        outcome = attrs.get("raymesh.outcome", "")
        if failed and span.get("error"):
            outcome = f"{outcome}: {span['error'][:60]}"
        table.add_row(
            "  " * depth
            + f"{attrs.get('raymesh.agent', '?')} {attrs.get('raymesh.message.type', '')}",
            bar,
            f"{(span['end_ns'] - span['start_ns']) / 1e6:.1f}",
            str(tokens) if tokens else "",
            f"{cost:.4f}" if cost is not None else "",
            Text(outcome, style="red" if failed else ""),
        )
    return table
