"""The benchmark runner: raymesh measured side by side with its baselines, in one run.

``raymesh bench`` and ``python -m benchmarks`` (`benchmarks.cli.bench`, where the flags are
defined) hand it their `Options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks import (
    DEFAULT_COUNT,
    SUITES,
    decode_bomb,
    gateway,
    llm_bound,
    patterns,
    peer,
    ratelimit,
    routing,
    stages,
    stream,
    supervision,
    tls_cost,
    topology,
    two_agents,
    watchdogs,
)
from benchmarks.chaos import OverloadFigures, overload
from mesh import Mesh, MeshConfig


@dataclass(frozen=True)
class Options:
    """What to measure and where to write it: the flags of ``raymesh bench`` (see there)."""

    suites: tuple[str, ...] = tuple(SUITES)
    count: int | None = None
    repeats: int = 20
    quick: bool = False
    full: bool = False
    agents: tuple[int, ...] = ()
    sign: bool = False
    overload_s: float = 30.0
    json: Path | None = None
    cross_node: bool = False
    no_peer: bool = False
    plot: Path | None = None


def _two_agents_table(rows: list[two_agents.Row]) -> Table:
    table = Table(title="raymesh vs raw Ray: two agents, 1 KiB payload")
    for column in ("scenario", "system", "msgs/s", "p50 ms", "p99 ms", "raymesh / raw"):
        table.add_column(column, justify="left" if column in ("scenario", "system") else "right")
    raw = {r.scenario: r for r in rows if r.system == "raw Ray"}
    for row in rows:
        ratio = row.msgs_per_s / raw[row.scenario].msgs_per_s if row.system == "raymesh" else None
        table.add_row(row.scenario, row.system, f"{row.msgs_per_s:,.0f}", f"{row.p50_ms:.2f}",
                      f"{row.p99_ms:.2f}", f"{ratio:.2f}x" if ratio else "")  # fmt: skip
    return table


def _signing_table(costs: list[two_agents.SigningCost]) -> Table:
    table = Table(title="cost of signed frames (HMAC-SHA256): two agents, 1 KiB payload")
    for column in ("scenario", "unsigned msgs/s", "signed msgs/s", "signed / unsigned"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for cost in costs:
        table.add_row(cost.scenario, f"{cost.unsigned_msgs_per_s:,.0f}",
                      f"{cost.signed_msgs_per_s:,.0f}", f"{cost.ratio:.2f}x")  # fmt: skip
    return table


def _report_two_agents(results: dict[str, Any], console: Console) -> dict[str, Any]:
    report: dict[str, Any] = {}
    if "two-agents" in results:
        console.print(_two_agents_table(results["two-agents"]))
        report["two_agents"] = [asdict(r) for r in results["two-agents"]]
    if "signing" in results:
        console.print(_signing_table(results["signing"]))
        report["signing"] = [{**asdict(c), "ratio": c.ratio} for c in results["signing"]]
    return report


def _stages_table(scenarios: list[stages.Scenario]) -> Table:
    table = Table(title="CPU microseconds per message, stage by stage (both agents' processes)")
    table.add_column("stage")
    for s in scenarios:
        table.add_column(s.scenario, justify="right")
    for row in stages.ROWS:
        table.add_row(row, *(f"{s.us[row]:.1f}" for s in scenarios))
    table.add_section()
    table.add_row("total", *(f"{s.total_us:.1f}" for s in scenarios))
    table.add_row("runtime (all but the handler)", *(f"{s.runtime_us:.1f}" for s in scenarios))
    table.add_row("Ray calls per 1,000 messages", *(f"{s.ray_calls_per_1k:.0f}" for s in scenarios))
    return table


def _latency_table(title: str, latencies: list[watchdogs.Latency]) -> Table:
    table = Table(title=title)
    for column in ("scenario", "agents", "samples", "median ms", "p95 ms", "max ms"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for lat in latencies:
        table.add_row(lat.scenario, str(lat.agents), str(lat.samples), f"{lat.median_ms:.1f}",
                      f"{lat.p95_ms:.1f}", f"{lat.max_ms:.1f}")  # fmt: skip
    return table


def _watchdog_tables(latencies: list[watchdogs.Latency], cost: watchdogs.Cost) -> list[Table]:
    found = _latency_table("deadlock detection and deadline overshoot", latencies)
    spent = Table(title="watchdogs, tracing and metrics: windowed asks between two agents")
    for column in ("all on, msgs/s", "all off, msgs/s", "on / off", "rounds", "rounds' range"):
        spent.add_column(column, justify="right")
    low, high = min(cost.round_ratios), max(cost.round_ratios)
    spent.add_row(f"{cost.on_msgs_per_s:,.0f}", f"{cost.off_msgs_per_s:,.0f}", f"{cost.ratio:.2f}x",
                  str(len(cost.round_ratios)), f"{low:.2f}x-{high:.2f}x")  # fmt: skip
    return [found, spent]


def _llm_table(rows: list[llm_bound.Throughput]) -> Table:
    table = Table(title="LLM-bound conversations: two model calls of 50 ms each")
    for column in ("model calls", "concurrent", "conversations", "per s", "ideal per s",
                   "measured / ideal"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model calls" else "right")
    for row in rows:
        table.add_row(row.model, str(row.concurrency), str(row.conversations),
                      f"{row.per_s:.1f}", f"{row.ideal_per_s:.1f}", f"{row.ratio:.2f}")  # fmt: skip
    return table


def _topology_table(outcome: topology.Outcome) -> Table:
    table = Table(title="mesh vs hub: N agents in a ring, raymesh vs raw Ray vs autogen-core")
    columns = ("mode", "N", "bytes", "topology", "msgs/s", "p50 ms", "p95 ms", "p99 ms",
               "CPU s / 1k", "vs raw")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("mode", "topology") else "right")
    index = {(r.scenario, r.topology, r.mode, r.agents, r.payload_bytes): r for r in outcome.rows}
    raw_of = {"mesh": "raw-mesh", "hub": "raw-hub"}
    previous: tuple[str, int, int] | None = None
    for row in outcome.rows:
        point = (row.mode, row.agents, row.payload_bytes)
        if previous is not None and point != previous:
            table.add_section()
        previous = point
        raw = index.get((row.scenario, raw_of.get(row.topology, ""), *point))
        ratio = f"{row.msgs_per_s / raw.msgs_per_s:.2f}x" if raw else ""
        table.add_row(row.mode, str(row.agents), f"{row.payload_bytes:,}", row.topology,
                      f"{row.msgs_per_s:,.0f}", _ms(row.p50_ms), _ms(row.p95_ms),
                      _ms(row.p99_ms), _ms(row.cpu_s_per_1k, ".3f"), ratio)  # fmt: skip
    return table


def _report_patterns(rows: list[patterns.Row] | None, console: Console) -> dict[str, Any]:
    """Print the patterns tables; return the JSON part (nothing when the suite did not run)."""
    if rows is None:
        return {}
    for table in _patterns_tables(rows):
        console.print(table)
    return {"patterns": {"rows": [asdict(r) for r in rows],
                         "mesh_over_hub": patterns.ratios(rows)}}  # fmt: skip


def _patterns_tables(rows: list[patterns.Row]) -> list[Table]:
    table = Table(title="hub vs mesh review: the same task, N agents on the offline model")
    for column in ("pattern", "N", "conversations", "concurrent", "conv/s", "msgs / conv"):
        table.add_column(column, justify="left" if column == "pattern" else "right")
    for row in rows:
        table.add_row(row.pattern, str(row.agents), str(row.conversations), str(row.concurrency),
                      f"{row.per_s:.2f}", f"{row.messages_per_conversation:.1f}")  # fmt: skip
    ratio = Table(title="mesh review / hub")
    for column in ("N", "conv/s", "msgs / conv"):
        ratio.add_column(column, justify="right")
    for n, r in patterns.ratios(rows).items():
        ratio.add_row(str(n), f"{r['per_s']:.2f}x", f"{r['messages']:.2f}x")
    return [table, ratio]


def _overload_table(outcomes: list[OverloadFigures]) -> Table:
    first = outcomes[0]
    table = Table(title=f"overload: producer at {first.offered / first.seconds:,.0f} msgs/s, "
                  f"consumer {first.consumer_per_s:,.0f} msgs/s, 1 KiB, {first.seconds:g} s "
                  "(the chaos scenario `overload`)")  # fmt: skip
    for column in ("policy", "offered", "accepted", "mailbox full", "outbox full", "other",
                   "held at the end", "producer MB start/peak", "consumer MB start/peak",
                   "growth MB", "bound MB"):  # fmt: skip
        table.add_column(column, justify="left" if column == "policy" else "right")
    for o in outcomes:
        table.add_row(o.policy, f"{o.offered:,}", f"{o.accepted:,}", f"{o.mailbox_full:,}",
                      f"{o.outbox_full:,}", f"{sum(o.errors.values()) + o.untyped:,}",
                      f"{o.unsettled:,}",
                      f"{o.producer_rss_mb[0]:.0f} / {max(o.producer_rss_mb):.0f}",
                      f"{o.consumer_rss_mb[0]:.0f} / {max(o.consumer_rss_mb):.0f}",
                      f"{o.growth_mb:.1f}", f"{o.bound_mb:.1f}")  # fmt: skip
    return table


def _report_ratelimit(outcome: ratelimit.Outcome | None, console: Console) -> dict[str, Any]:
    if outcome is None:
        return {}
    for table in ratelimit.tables(outcome):
        console.print(table)
    return {"ratelimit": asdict(outcome)}


def _report_overload(outcomes: list[OverloadFigures] | None, console: Console) -> dict[str, Any]:
    if not outcomes:
        return {}
    console.print(_overload_table(outcomes))
    return {"overload": [{**asdict(o), "growth_mb": o.growth_mb, "bound_mb": o.bound_mb}
                         for o in outcomes]}  # fmt: skip


def _ms(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _plan(args: Options) -> topology.Plan:
    plan = topology.PLANS["quick" if args.quick else "full" if args.full else "default"]
    if args.agents:
        plan = dataclasses.replace(plan, agents=tuple(sorted(set(args.agents))))
    return plan


@contextlib.contextmanager
def _progress(console: Console, suite: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar for a suite of many steps; yields the function that advances it."""
    columns = (TextColumn(f"[bold]{suite}[/bold] {{task.description}}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=total)
        yield lambda text: progress.update(task, description=text, advance=1)


async def _run_topology(
    mesh: Mesh, args: Options, console: Console, baseline: peer.Peer | None
) -> topology.Outcome:
    """The topology suite: dozens of measurements."""
    plan = _plan(args)
    total = topology.steps(plan, with_peer=baseline is not None) + 1
    with _progress(console, "topology", total) as step:
        outcome = await topology.run(mesh, plan, count=args.count, on_step=step, peer=baseline)
    if baseline is None:
        outcome.notes.append("the autogen-core baseline was skipped (--no-peer)")
    return outcome


async def _measure(args: Options, console: Console, baseline: peer.Peer | None) -> dict[str, Any]:
    with console.status("starting Ray"):
        # The suites kill agents and flood mailboxes on purpose: their dead letters are
        # counted in the tables, not logged line by line over them.
        mesh = Mesh.local(config=MeshConfig(log_dead_letters=False),
                          num_cpus=os.cpu_count() or 2, log_to_driver=False)  # fmt: skip
    results: dict[str, Any] = {}
    count = args.count or DEFAULT_COUNT
    try:
        if "topology" in args.suites:
            results["topology"] = await _run_topology(mesh, args, console, baseline)
        if "two-agents" in args.suites:
            with console.status(f"two agents: {count:,} messages per stream"):
                results["two-agents"] = await two_agents.run(mesh, count=count)
        if "two-agents" in args.suites and args.sign:
            with console.status(f"signing: {count:,} messages per stream, unsigned vs signed"):
                results["signing"] = await two_agents.signing_cost(mesh, count=count)
        if "watchdogs" in args.suites:
            with console.status("watchdogs: deadlocks, deadlines and their cost"):
                results["watchdogs"] = await watchdogs.run(mesh, repeats=args.repeats, count=count)
        if "supervision" in args.suites:
            with _progress(console, "supervision", args.repeats) as step:
                results["supervision"] = await supervision.kill_to_answer(
                    mesh, repeats=args.repeats, on_step=step
                )
        if "llm" in args.suites:
            with console.status("LLM-bound: a team against a loopback model, 50 ms a call"):
                results["llm"] = await llm_bound.run(mesh)
        if "patterns" in args.suites:
            with console.status("patterns: hub vs mesh review, N agents"):
                sizes = tuple(args.agents or ((2, 4) if args.quick else (2, 4, 8)))
                results["patterns"] = await patterns.run(
                    mesh, agents=sizes, conversations=args.count or 20
                )
        if "overload" in args.suites:
            with console.status(f"overload: 10x the consumer's speed, {args.overload_s:g} s "
                                "per mailbox policy"):  # fmt: skip
                results["overload"] = await overload(mesh, seconds=args.overload_s)
        results |= await _measure_newer(mesh, args, console)
    finally:
        await mesh.shutdown()
    return results


async def _measure_newer(mesh: Mesh, args: Options, console: Console) -> dict[str, Any]:
    """The decode-bomb, rate-limit, profile, stream and gateway suites, on the run's mesh."""
    results: dict[str, Any] = {}
    count = args.count or DEFAULT_COUNT
    if "decode-bomb" in args.suites:
        with console.status("decode bombs: 1 MiB payloads at a live agent"):
            results["decode-bomb"] = await decode_bomb.run(mesh)
    if "ratelimit" in args.suites:
        with console.status("rate limits and the response cache: 8 agents, one key"):
            results["ratelimit"] = await ratelimit.run(mesh, quick=args.quick)
    if "profile" in args.suites:
        with console.status(f"profile: {count:,} tells and asks, stage by stage"):
            results["profile"] = await stages.run(mesh, count=count)
    if "stream" in args.suites:
        with console.status("streaming: time to first token per hop, chunks per second"):
            results["stream"] = await stream.run(mesh, quick=args.quick)
    if "gateway" in args.suites:
        asks = args.count or (100 if args.quick else 400)
        with console.status(f"gateway: {asks:,} chats per level over HTTP vs Mesh.ask"):
            results["gateway"] = await gateway.run(mesh, requests=asks)
    return results


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cross_node(args: Options, outcome: topology.Outcome, console: Console) -> None:
    """Run benchmarks.crossnode in a subprocess (a driver joins one cluster) and merge its rows."""
    plan = _plan(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "crossnode.json")
        command = [sys.executable, "-m", "benchmarks.crossnode", "--json", out,
                   "--agents", *map(str, plan.agents)]  # fmt: skip
        command += ["--count", str(args.count)] if args.count else []
        with console.status("topology across two Ray nodes (a local two-node cluster)"):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            outcome.notes.append(f"cross-node run failed (exit {done.returncode}): {tail[0]}")
            return
        with open(out, encoding="utf-8") as rows:
            outcome.rows += [topology.Row(**row) for row in json.load(rows)["rows"]]


def _report_topology(
    outcome: topology.Outcome, console: Console, *, plot_path: str | None
) -> dict[str, Any]:
    """Print the topology table and summary, draw the plot; return the JSON parts."""
    console.print(_topology_table(outcome))
    for note in outcome.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for name, by_mode in topology.summarize(outcome.rows).items():
        for mode, ratios in by_mode.items():
            shown = ", ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())
            console.print(f"{name.replace('_', ' ')} ({mode}): {shown}")
    if plot_path:
        from benchmarks import plot

        plot.draw(outcome.rows, plot_path)
        console.print(f"plot written to {plot_path}")
    return outcome.as_json()


def _report_newer(results: dict[str, Any], console: Console) -> dict[str, Any]:
    """The tables and JSON of the decode-bomb, profile, gateway and stream suites that ran."""
    report: dict[str, Any] = {}
    if "decode-bomb" in results:
        console.print(decode_bomb.table(results["decode-bomb"]))
        report["decode-bomb"] = [{**asdict(shape), "held": shape.held}
                                 for shape in results["decode-bomb"].shapes]  # fmt: skip
    if "profile" in results:
        console.print(_stages_table(results["profile"]))
        report["profile"] = stages.as_json(results["profile"])
    if "gateway" in results:
        console.print(gateway.table(results["gateway"]))
        report["gateway"] = gateway.as_json(results["gateway"])
    if "stream" in results:
        console.print(stream.table(results["stream"]))
        report["stream"] = stream.as_json(results["stream"])
    return report


def run(args: Options) -> None:
    """Run the chosen suites, print their tables, and write the JSON and plot if asked.

    Raises:
        BaselineError: The autogen-core baseline could not be installed or run.
    """
    if args.plot:
        from benchmarks import plot  # fail before measuring, not after

        plot.require()
    # Not a terminal (CI logs, pipes): rich would wrap the wide tables at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    progress = Console(stderr=True)
    # Before Ray starts: an offline machine fails in seconds, not after the other suites.
    wants_peer = "topology" in args.suites and not args.no_peer
    baseline = peer.ensure(progress) if wants_peer else None
    # The tls suite starts Rays of its own, in processes of their own; routing needs none.
    in_process = set(args.suites) - {"tls", "routing"}
    results = asyncio.run(_measure(args, progress, baseline)) if in_process else {}
    if "topology" in results and args.cross_node:
        _cross_node(args, results["topology"], progress)
    report: dict[str, Any] = {
        "raymesh": _version("raymesh"),
        "ray": ray.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "machine": platform.machine()},
    }  # fmt: skip
    if "topology" in results:
        report |= _report_topology(
            results["topology"], console, plot_path=str(args.plot) if args.plot else None
        )
    report |= _report_two_agents(results, console)
    if "watchdogs" in results:
        latencies, cost = results["watchdogs"]
        for table in _watchdog_tables(latencies, cost):
            console.print(table)
        report["watchdogs"] = {
            "latencies": [asdict(lat) for lat in latencies],
            "cost": {**asdict(cost), "ratio": cost.ratio},
        }
    if "supervision" in results:
        restarts: supervision.Restarts = results["supervision"]
        table = _latency_table("supervision: kill to restarted agent answering",
                               [restarts.latency])  # fmt: skip
        table.caption = "dead letters from the kills (expected): " + (
            ", ".join(f"{reason} {n:,}" for reason, n in sorted(restarts.dead_letters.items()))
            or "none"
        )
        console.print(table)
        report["supervision"] = {**asdict(restarts.latency),
                                 "dead_letters": restarts.dead_letters}  # fmt: skip
    if "llm" in results:
        console.print(_llm_table(results["llm"]))
        report["llm"] = [{**asdict(r), "ideal_per_s": r.ideal_per_s, "ratio": r.ratio}
                         for r in results["llm"]]  # fmt: skip
    report |= _report_patterns(results.get("patterns"), console)
    report |= _report_ratelimit(results.get("ratelimit"), console)
    report |= _report_overload(results.get("overload"), console)
    if "tls" in args.suites:
        report |= tls_cost.run(_plan(args), count=args.count, rounds=1 if args.quick else 2,
                               console=console, progress=progress)  # fmt: skip
    report |= _report_newer(results, console)
    if "routing" in args.suites:  # model clients only: no Ray
        report["routing"] = asyncio.run(routing.run())
        console.print(routing.table(report["routing"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
