"""Benchmark and chaos tables, rendered from the committed JSON in ``docs/bench/``.

Two kinds of file are read, told apart by their keys: what ``raymesh bench --json`` writes
(``rows``, ``summary``, ``notes``, ``machine`` and, for a run of every suite, ``two_agents``,
``watchdogs``, ``supervision``, ``llm``, ``patterns``, ``overload``) and what
``raymesh chaos --json`` writes (``quick``, ``scenarios``, ``figures``). The runners print
rich tables to a terminal; these are the same figures as Markdown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

#: Where the committed results live, relative to the repository root.
BENCH_DIR = Path("docs/bench")
_RAW_OF = {"mesh": "raw-mesh", "hub": "raw-hub"}


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], right: int = 1) -> str:
    """A Markdown table; columns from index `right` on are right-aligned."""
    align = ["---" if i < right else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = (str(c).replace("|", "\\|").replace("\n", " ") for c in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def load(path: Path) -> dict[str, Any]:
    """Read one results file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def is_chaos(data: dict[str, Any]) -> bool:
    """True for a ``raymesh chaos --json`` file."""
    return "figures" in data and "scenarios" in data


def machine_line(data: dict[str, Any]) -> str:
    """raymesh, Ray, Python and CPU count of the run, as one sentence."""
    m = data.get("machine", {})
    return (
        f"raymesh {data.get('raymesh', '?')}, Ray {data.get('ray', '?')}, "
        f"Python {m.get('python', '?')}, {m.get('cpus', '?')} CPUs, {m.get('platform', '?')}."
    )


def topology_table(rows: list[dict[str, Any]]) -> str:
    """Every measured point of the ring: mesh, hub and their raw-Ray twins."""
    index = {
        (r["scenario"], r["topology"], r["mode"], r["agents"], r["payload_bytes"]): r for r in rows
    }
    shown = []
    for r in rows:
        point = (r["mode"], r["agents"], r["payload_bytes"])
        raw = index.get((r["scenario"], _RAW_OF.get(r["topology"], ""), *point))
        ratio = f"{r['msgs_per_s'] / raw['msgs_per_s']:.2f}x" if raw else ""
        shown.append(
            (r["scenario"], r["mode"], r["agents"], f"{r['payload_bytes']:,}", r["topology"],
             _num(r["msgs_per_s"]), _num(r["p50_ms"], ".1f"), _num(r["p99_ms"], ".1f"),
             _num(r["cpu_s_per_1k"], ".3f"), ratio)
        )  # fmt: skip
    header = ("where", "mode", "N", "bytes", "topology", "msgs/s", "p50 ms", "p99 ms",
              "CPU s / 1k", "vs raw")  # fmt: skip
    return _table(header, shown, right=5)


def summary_tables(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """One table per ratio (mesh / hub, mesh / raw...): modes by measured point."""
    out = []
    for name, by_mode in summary.items():
        points = sorted({p for ratios in by_mode.values() for p in ratios}, key=_point_key)
        if not points:
            continue
        rows = [
            (mode, *(_ratio(ratios.get(p)) for p in points)) for mode, ratios in by_mode.items()
        ]
        out.append(f"**{name.replace('_over_', ' / ').replace('_', '-')}**\n\n")
        out.append(_table(("mode", *points), rows))
    return "\n".join(out)


def _point_key(point: str) -> tuple[bool, int, int]:
    """Order 'N=8, 1024 B' points by cross-node, then N, then payload."""
    parts = point.replace("cross-node, ", "").replace("N=", "").replace(" B", "").split(", ")
    return (point.startswith("cross-node"), int(parts[0]), int(parts[1]))


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _two_agents(data: list[dict[str, Any]]) -> str:
    rows = [(r["scenario"], r["system"], _num(r["msgs_per_s"]), _num(r["p50_ms"], ".2f"),
             _num(r["p99_ms"], ".2f")) for r in data]  # fmt: skip
    return _table(("scenario", "system", "msgs/s", "p50 ms", "p99 ms"), rows, right=2)


def _latencies(data: list[dict[str, Any]]) -> str:
    rows = [(r["scenario"], r["agents"], r["samples"], _num(r["median_ms"], ".1f"),
             _num(r["p95_ms"], ".1f"), _num(r["max_ms"], ".1f")) for r in data]  # fmt: skip
    return _table(("scenario", "agents", "samples", "median ms", "p95 ms", "max ms"), rows)


def _watchdogs(data: dict[str, Any]) -> str:
    out = _latencies(data.get("latencies", []))
    if cost := data.get("cost"):
        rounds = cost.get("round_ratios") or []  # older results kept medians only
        out += "\n" + _table(
            ("all on, msgs/s", "all off, msgs/s", "on / off", "rounds", "rounds' range"),
            [
                (
                    _num(cost.get("on_msgs_per_s")),
                    _num(cost.get("off_msgs_per_s")),
                    _ratio(cost.get("ratio")),
                    str(len(rounds)) if rounds else "",
                    f"{_ratio(min(rounds))}-{_ratio(max(rounds))}" if rounds else "",
                )
            ],
            right=0,
        )
    return out


def _supervision(data: dict[str, Any]) -> str:
    return _latencies([data])


def _llm(data: list[dict[str, Any]]) -> str:
    rows = [(r.get("model", "openai SDK"), r["concurrency"], r["conversations"],
             _num(r["per_s"], ".1f"), _num(r["ideal_per_s"], ".1f"), _num(r["ratio"], ".2f"))
            for r in data]  # fmt: skip
    header = ("model calls", "concurrent", "conversations", "per s", "ideal per s",
              "measured / ideal")  # fmt: skip
    return _table(header, rows)


def _patterns(data: dict[str, Any]) -> str:
    rows = [(r["pattern"], r["agents"], r["conversations"], r["concurrency"],
             _num(r["per_s"], ".2f"), _num(r["messages_per_conversation"], ".1f"))
            for r in data.get("rows", [])]  # fmt: skip
    header = ("pattern", "N", "conversations", "concurrent", "conv/s", "msgs / conv")
    return _table(header, rows)


def _overload(data: list[dict[str, Any]]) -> str:
    rows = [(o["policy"], f"{o['offered']:,}", f"{o['accepted']:,}", f"{o['mailbox_full']:,}",
             f"{o['outbox_full']:,}", f"{o['unsettled']:,}", _num(o.get("growth_mb"), ".1f"),
             _num(o.get("bound_mb"), ".1f")) for o in data]  # fmt: skip
    header = ("policy", "offered", "accepted", "mailbox full", "outbox full", "held at the end",
              "growth MB", "bound MB")  # fmt: skip
    return _table(header, rows)


def _stream(data: dict[str, Any]) -> str:
    # Ratio, target and verdict as the suite wrote them (`benchmarks.stream.Ttft`).
    ttft = [("openai SDK, direct" if t["hops"] == 0 else f"mesh, {t['hops']} hop(s)",
             _num(t["ttft_ms"], ".1f"), _ratio(t["ratio"]),
             "" if t["hops"] == 0 else _num(t["target_ms"], ".1f"),
             "" if t["hops"] == 0 else ("yes" if t["met"] else "**NO**"),
             _num(t["total_ms"], ".1f"), t["rounds"]) for t in data["ttft"]]  # fmt: skip
    header = ("path", "first token ms", "x direct", "target ms", "met", "whole answer ms",
              "rounds")  # fmt: skip
    flow = [(t["hops"], f"{t['chunks']:,}", _num(t["per_s"])) for t in data["throughput"]]
    return (_table(header, ttft) + "\nChunks per second read at the edge:\n\n"
            + _table(("hops", "chunks", "per s"), flow))  # fmt: skip


#: The other suites of a full ``raymesh bench`` run: key, heading, renderer.
SUITES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("two_agents", "Two agents, 1 KiB payload", _two_agents),
    ("watchdogs", "Watchdogs: deadlock detection, deadline overshoot and their cost", _watchdogs),
    ("supervision", "Supervision: kill to restarted agent answering", _supervision),
    ("llm", "LLM-bound conversations: two model calls of 50 ms each", _llm),
    ("patterns", "Hub vs mesh review on the offline model", _patterns),
    ("overload", "Overload (the chaos scenario `overload`)", _overload),
    ("profile", "CPU microseconds per message, stage by stage",
     lambda data: profile_table({"profile": data}, None)),
    ("stream", "Streaming: time to first token per hop (target 1.2x direct + 5 ms a hop), "
     "chunks per second", _stream),
)  # fmt: skip


def render_bench(name: str, data: dict[str, Any]) -> str:
    """One ``raymesh bench --json`` file as a section of Markdown."""
    parts = [f"## `{name}`\n", machine_line(data) + "\n"]
    if data.get("rows"):
        parts += ["### Topology: every point\n", topology_table(data["rows"])]
    if data.get("summary"):
        parts += ["### Topology: throughput ratios in this run\n", summary_tables(data["summary"])]
    for key, title, render in SUITES:
        if data.get(key):
            parts += [f"### {title}\n", render(data[key])]
    if notes := data.get("notes"):
        parts += ["Notes of the run:\n", "".join(f"- {note}\n" for note in notes)]
    return "\n".join(parts)


def render_chaos(name: str, data: dict[str, Any]) -> str:
    """One ``raymesh chaos --json`` file: its figures, as the runner's table."""
    form = "CI form (`--quick`)" if data.get("quick") else "full form"
    rows = []
    shown = ""
    for f in data["figures"]:
        met = "" if f.get("met") is None else ("yes" if f["met"] else "**NO**")
        rows.append(
            (f["scenario"] if f["scenario"] != shown else "", f["figure"], f["value"],
             f.get("target", ""), met)
        )  # fmt: skip
        shown = f["scenario"]
    header = f"## `{name}`: {form}\n"
    return header + "\n" + _table(("scenario", "figure", "measured", "target", "met"), rows, 2)


def result_files(root: Path) -> list[Path]:
    """The committed results files, sorted by name."""
    return sorted((root / BENCH_DIR).glob("*.json"))


def render_results(root: Path) -> tuple[str, str]:
    """Return (benchmark tables, chaos tables) of every committed results file."""
    bench, chaos = [], []
    for path in result_files(root):
        data = load(path)
        if is_chaos(data):
            chaos.append(render_chaos(path.name, data))
        elif "rows" in data:
            bench.append(render_bench(path.name, data))
        elif "profile" in data:
            bench.append(render_profile(path.name, data))
        elif any(key in data for key, _, _ in SUITES):  # one suite's run (`raymesh bench X`)
            bench.append(render_bench(path.name, data))
    return "\n".join(bench), "\n".join(chaos)


# -- the stage profile (`raymesh bench profile`), written into the benchmarks guide --------

#: The committed profiles, before and after the hot-path work, and the guide they go in.
PROFILES = (BENCH_DIR / "profile-before.json", BENCH_DIR / "profile.json")
GUIDE = Path("docs/guides/benchmarks.md")
_BEGIN = "<!-- profile table: generated by `python docs/_gen/bench.py`, do not edit -->"
_END = "<!-- end of the profile table -->"


def profile_table(before: dict[str, Any], after: dict[str, Any] | None) -> str:
    """CPU microseconds per message by stage, each scenario before and after (with shares)."""
    runs = [before["profile"]] + ([after["profile"]] if after else [])
    names = [s["scenario"] for s in runs[0]["scenarios"]]
    header = ["stage"]
    for name in names:
        header += [f"{name}: before", f"{name}: after"] if after else [name]
    by_run = [{s["scenario"]: s for s in run["scenarios"]} for run in runs]
    rows = []
    for row in before["profile"]["rows"]:
        cells: list[str] = [row]
        for name in names:
            for scenarios in by_run:
                s = scenarios.get(name)
                cells.append(_stage_cell(s, row, share=row not in runs[0]["not_runtime"])
                             if s else "-")  # fmt: skip
        rows.append(cells)
    for label, key in (("total", "total_us"), ("the runtime (not handler, not profiler)",
                                               "runtime_us")):  # fmt: skip
        rows.append([f"**{label}**", *(f"**{by[name][key]:.1f}**" if name in by else "-"
                                       for name in names for by in by_run)])  # fmt: skip
    rows.append(["Ray calls per 1,000 messages",
                 *(_num(by[name].get("ray_calls_per_1k")) if name in by else "-"
                   for name in names for by in by_run)])  # fmt: skip
    return _table(header, rows)


def _stage_cell(scenario: dict[str, Any], row: str, *, share: bool) -> str:
    us = scenario["us"].get(row, 0.0)
    if us < 0.05:
        return "0"
    return f"{us:.1f} ({100 * us / scenario['runtime_us']:.0f}%)" if share else f"{us:.1f}"


def render_profile(name: str, data: dict[str, Any]) -> str:
    """One ``raymesh bench profile --json`` file: CPU microseconds per message by stage."""
    return "\n".join((f"## `{name}`\n", machine_line(data) + "\n",
                      "### CPU microseconds per message, stage by stage\n",
                      profile_table(data, None)))  # fmt: skip


def profile_section(root: Path) -> str:
    """The guide's block: the table, the machine, and how it was made."""
    before_path, after_path = (root / p for p in PROFILES)
    before = load(before_path)
    after = load(after_path) if after_path.exists() else None
    note = (
        f"Before: {machine_line(before)} After: {machine_line(after)}" if after
        else f"{machine_line(before)}"
    )  # fmt: skip
    return "\n".join((_BEGIN, "", profile_table(before, after), note, "", _END))


def write_profile_section(root: Path) -> bool:
    """Rewrite the guide's profile block from the committed JSON; True if it changed."""
    guide = root / GUIDE
    text = guide.read_text(encoding="utf-8")
    start, end = text.index(_BEGIN), text.index(_END) + len(_END)
    updated = text[:start] + profile_section(root) + text[end:]
    guide.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    changed = write_profile_section(Path(__file__).resolve().parents[2])
    print("docs/guides/benchmarks.md:", "profile table rewritten" if changed else "up to date")
