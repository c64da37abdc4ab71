"""``raymesh trace``: one conversation as a tree of handled messages with timing bars."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

__all__ = ["trace_table"]

_BAR = 30


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


def trace_table(spans: list[dict[str, Any]]) -> Table:
    """Return the spans of one trace as a table: tree, timing bar, duration, tokens, cost."""
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    width = max(end - start, 1)
    table = Table(title=f"trace {spans[0]['trace_id']}  ({width / 1e6:.1f} ms)")
    for column in ("agent / message", "timeline", "ms", "tokens", "cost $", "outcome"):
        table.add_column(
            column, justify="right" if column in ("ms", "tokens", "cost $") else "left"
        )
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
