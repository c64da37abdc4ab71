"""``python -m benchmarks``: raymesh measured side by side with its baselines, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from dataclasses import asdict
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from benchmarks import llm_bound, supervision, two_agents, watchdogs
from mesh import Mesh

SUITES = ("two-agents", "watchdogs", "supervision", "llm")


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
    spent = Table(title="cost of the watchdogs: windowed asks between two agents")
    for column in ("watchdogs on, msgs/s", "off, msgs/s", "on / off"):
        spent.add_column(column, justify="right")
    spent.add_row(f"{cost.on_msgs_per_s:,.0f}", f"{cost.off_msgs_per_s:,.0f}", f"{cost.ratio:.2f}x")
    return [found, spent]


def _llm_table(rows: list[llm_bound.Throughput]) -> Table:
    table = Table(title="LLM-bound conversations: two model calls of 50 ms each")
    for column in ("concurrent", "conversations", "per s", "ideal per s", "measured / ideal"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row.concurrency), str(row.conversations), f"{row.per_s:.1f}",
                      f"{row.ideal_per_s:.1f}", f"{row.ratio:.2f}")  # fmt: skip
    return table


async def _measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    with console.status("starting Ray"):
        mesh = Mesh.local(num_cpus=os.cpu_count() or 2, log_to_driver=False)
    results: dict[str, Any] = {}
    try:
        if "two-agents" in args.suites:
            with console.status(f"two agents: {args.count:,} messages per stream"):
                results["two-agents"] = await two_agents.run(mesh, count=args.count)
        if "watchdogs" in args.suites:
            with console.status("watchdogs: deadlocks, deadlines and their cost"):
                results["watchdogs"] = await watchdogs.run(
                    mesh, repeats=args.repeats, count=args.count
                )
        if "supervision" in args.suites:
            with console.status("supervision: kill to answer"):
                results["supervision"] = await supervision.kill_to_answer(
                    mesh, repeats=args.repeats
                )
        if "llm" in args.suites:
            with console.status("LLM-bound: a team against a loopback model, 50 ms a call"):
                results["llm"] = await llm_bound.run(mesh)
    finally:
        await mesh.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"suites to run: {', '.join(SUITES)} (default: all)")  # fmt: skip
    parser.add_argument("--count", type=int, default=5000, help="messages per stream")
    parser.add_argument("--repeats", type=int, default=20, help="samples per latency figure")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(
            f"unknown suite(s) {', '.join(sorted(unknown))}; choose from {', '.join(SUITES)}"
        )
    args.suites = args.suites or list(SUITES)
    console = Console()
    results = asyncio.run(_measure(args, Console(stderr=True)))
    report: dict[str, Any] = {
        "ray": ray.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if "two-agents" in results:
        console.print(_two_agents_table(results["two-agents"]))
        report["two_agents"] = [asdict(r) for r in results["two-agents"]]
    if "watchdogs" in results:
        latencies, cost = results["watchdogs"]
        for table in _watchdog_tables(latencies, cost):
            console.print(table)
        report["watchdogs"] = {
            "latencies": [asdict(lat) for lat in latencies],
            "cost": {**asdict(cost), "ratio": cost.ratio},
        }
    if "supervision" in results:
        restart = results["supervision"]
        console.print(_latency_table("supervision: kill to restarted agent answering", [restart]))
        report["supervision"] = asdict(restart)
    if "llm" in results:
        console.print(_llm_table(results["llm"]))
        report["llm"] = [{**asdict(r), "ideal_per_s": r.ideal_per_s, "ratio": r.ratio}
                         for r in results["llm"]]  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
