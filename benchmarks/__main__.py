"""``python -m benchmarks``: raymesh against plain Ray actor calls, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from dataclasses import asdict

import ray
from rich.console import Console
from rich.table import Table

from benchmarks import two_agents
from mesh import Mesh


def _table(rows: list[two_agents.Row]) -> Table:
    table = Table(title="raymesh vs raw Ray: two agents, 1 KiB payload")
    for column in ("scenario", "system", "msgs/s", "p50 ms", "p99 ms", "raymesh / raw"):
        table.add_column(column, justify="left" if column in ("scenario", "system") else "right")
    raw = {r.scenario: r for r in rows if r.system == "raw Ray"}
    for row in rows:
        ratio = row.msgs_per_s / raw[row.scenario].msgs_per_s if row.system == "raymesh" else None
        table.add_row(row.scenario, row.system, f"{row.msgs_per_s:,.0f}", f"{row.p50_ms:.2f}",
                      f"{row.p99_ms:.2f}", f"{ratio:.2f}x" if ratio else "")  # fmt: skip
    return table


async def _measure(args: argparse.Namespace) -> list[two_agents.Row]:
    console = Console(stderr=True)
    with console.status("starting Ray"):
        mesh = Mesh.local(num_cpus=os.cpu_count() or 2, log_to_driver=False)
    try:
        with console.status(f"measuring {args.count:,} messages per stream, twice each"):
            rows = await two_agents.run(mesh, count=args.count)
    finally:
        await mesh.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="messages per stream")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = asyncio.run(_measure(args))
    Console().print(_table(rows))
    if args.json:
        report = {
            "ray": ray.__version__,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "rows": [asdict(r) for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
