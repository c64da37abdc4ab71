"""The cost of Ray's TLS: the topology workload on a plain and on a TLS local Ray, side by side.

Ray's TLS is chosen when Ray starts, and its variables stay in the process that set
them, so each side runs in a fresh process (``python -m benchmarks.tls_cost --side
plain|tls``), one after the other: plain, TLS, and again in that order unless
``--quick``. Each point keeps its best throughput per side over the rounds (the noise of
this shared machine only ever slows a run down), and the figure is TLS / plain
throughput per (topology, mode, N, payload): what mutual TLS on every gRPC channel
costs, raymesh's agents and raw Ray actors alike. The TLS side's CA and node
certificate are made in a temp dir (``RAYMESH_TLS_DIR``), never in ``$RAYMESH_HOME``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from benchmarks import topology
from benchmarks.percentiles import percentile
from mesh import Mesh, MeshConfig
from mesh.security import speaks_tls

SIDES = ("plain", "tls")
#: What the parent's shell may set that would make the plain side run TLS, or join a cluster.
_INHERITED = ("RAY_ADDRESS", "RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY",
              "RAY_TLS_CA_CERT")  # fmt: skip
_SIDE_LIMIT_S = 1800.0

Key = tuple[str, str, int, int]  # topology, mode, N, payload


@dataclass
class Outcome:
    """Each side's best row per point, and notes on what failed."""

    rows: list[topology.Row] = field(default_factory=list)
    rounds: int = 1
    #: Per side, whether its GCS port answered a TLS handshake: the TLS side did run TLS.
    speaks_tls: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ratios(self) -> dict[str, dict[str, float]]:
        """``{mode: {"mesh, N=2, 1024 B": tls/plain}}`` over the points both sides measured."""
        plain = {_key(r): r for r in self.rows if r.scenario == "plain"}
        out: dict[str, dict[str, float]] = {}
        for row in self.rows:
            base = plain.get(_key(row))
            if row.scenario != "tls" or base is None or base.msgs_per_s <= 0:
                continue
            label = f"{row.topology}, N={row.agents}, {row.payload_bytes} B"
            out.setdefault(row.mode, {})[label] = round(row.msgs_per_s / base.msgs_per_s, 3)
        return out

    def medians(self) -> dict[str, float]:
        """``{topology: median tls/plain}`` over every point and mode: one figure each."""
        by_topology: dict[str, list[float]] = {}
        for by_point in self.ratios().values():
            for label, ratio in by_point.items():
                by_topology.setdefault(label.split(",", 1)[0], []).append(ratio)
        return {top: round(percentile(values, 0.5) or 0.0, 3)
                for top, values in sorted(by_topology.items())}  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        """The report's ``tls`` part."""
        return {"rows": [asdict(r) for r in self.rows], "tls_over_plain": self.ratios(),
                "tls_over_plain_median": self.medians(), "rounds": self.rounds,
                "speaks_tls": self.speaks_tls, "notes": self.notes}  # fmt: skip


def _key(row: topology.Row) -> Key:
    return row.topology, row.mode, row.agents, row.payload_bytes


def _side_command(side: str, plan: topology.Plan, count: int | None, out: Path) -> list[str]:
    command = [sys.executable, "-m", "benchmarks.tls_cost", "--side", side, "--json", str(out),
               "--agents", *map(str, plan.agents), "--payloads", *map(str, plan.payloads),
               "--messages", str(plan.messages)]  # fmt: skip
    return command + (["--count", str(count)] if count else [])


def measure(plan: topology.Plan, *, count: int | None, rounds: int, console: Console) -> Outcome:
    """Run the plan on a plain and on a TLS Ray, `rounds` times each, alternating."""
    outcome = Outcome(rounds=rounds)
    best: dict[tuple[str, Key], topology.Row] = {}
    with tempfile.TemporaryDirectory(prefix="raymesh-tls-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
        env["RAYMESH_TLS_DIR"] = os.path.join(tmp, "tls")
        for round_no in range(1, rounds + 1):
            for side in SIDES:
                out = Path(tmp) / f"{side}-{round_no}.json"
                with console.status(f"tls: topology on a {side} Ray (round {round_no}/{rounds})"):
                    done = subprocess.run(_side_command(side, plan, count, out), env=env,
                                          capture_output=True, text=True, check=False,
                                          timeout=_SIDE_LIMIT_S)  # fmt: skip
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                    outcome.notes.append(f"{side} round {round_no} failed "
                                         f"(exit {done.returncode}): {tail[0]}")  # fmt: skip
                    continue
                report = json.loads(out.read_text())
                outcome.speaks_tls[side] = report["speaks_tls"]
                outcome.notes += [f"{side}: {note}" for note in report["notes"]]
                for raw in report["rows"]:
                    row = topology.Row(**raw)
                    kept = best.get((side, _key(row)))
                    if kept is None or row.msgs_per_s > kept.msgs_per_s:
                        best[(side, _key(row))] = row
    outcome.rows = sorted(best.values(), key=lambda r: (r.mode, r.agents, r.payload_bytes,
                                                        r.topology, r.scenario))  # fmt: skip
    return outcome


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(outcome: Outcome) -> Table:
    """TLS next to plain, point by point."""
    title = f"cost of TLS: N agents in a ring, plain vs TLS Ray (best of {outcome.rounds})"
    shown = Table(title=title)
    for column in ("mode", "N", "bytes", "topology", "plain msgs/s", "TLS msgs/s",
                   "TLS / plain", "plain p50 ms", "TLS p50 ms"):  # fmt: skip
        shown.add_column(column, justify="left" if column in ("mode", "topology") else "right")
    plain = {_key(r): r for r in outcome.rows if r.scenario == "plain"}
    for row in outcome.rows:
        base = plain.get(_key(row))
        if row.scenario != "tls" or base is None:
            continue
        shown.add_row(row.mode, str(row.agents), f"{row.payload_bytes:,}", row.topology,
                      f"{base.msgs_per_s:,.0f}", f"{row.msgs_per_s:,.0f}",
                      f"{row.msgs_per_s / base.msgs_per_s:.2f}x", _ms(base.p50_ms),
                      _ms(row.p50_ms))  # fmt: skip
    return shown


def run(
    plan: topology.Plan, *, count: int | None, rounds: int, console: Console, progress: Console
) -> dict[str, Any]:
    """Measure, print the table and notes; return the report's ``tls`` part."""
    outcome = measure(plan, count=count, rounds=rounds, console=progress)
    console.print(table(outcome))
    shown = ", ".join(f"{top} {ratio:.2f}x" for top, ratio in outcome.medians().items())
    console.print(f"TLS / plain throughput, median over the points: {shown}")
    for note in outcome.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    return {"tls": outcome.as_json()}


# -- one side, in its own process ----------------------------------------------------


async def _side(tls: bool, plan: topology.Plan, count: int | None, scenario: str) -> dict[str, Any]:
    mesh = Mesh.local(config=MeshConfig(log_dead_letters=False), tls=tls,
                      num_cpus=os.cpu_count() or 2, log_to_driver=False)  # fmt: skip
    try:
        host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
        outcome = await topology.run(mesh, plan, count=count, scenario=scenario)
        return {**outcome.as_json(), "speaks_tls": speaks_tls(host, int(port))}
    finally:
        await mesh.shutdown()


def main() -> None:
    """One side: start a local Ray (TLS or not), run the plan, write its rows as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tls_cost")
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--json", required=True, metavar="PATH")
    parser.add_argument("--agents", type=int, nargs="+", required=True)
    parser.add_argument("--payloads", type=int, nargs="+", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    plan = topology.Plan(agents=tuple(args.agents), payloads=tuple(args.payloads),
                         messages=args.messages)  # fmt: skip
    report = asyncio.run(_side(args.side == "tls", plan, args.count, args.side))
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(report, out)


if __name__ == "__main__":
    main()
