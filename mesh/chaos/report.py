"""The whole chaos suite in one run, and its figures as a table and as JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mesh.chaos.conversation import ConversationFigures, chaos_conversation
from mesh.chaos.hung import HungFigures, hung_agent
from mesh.chaos.order import OrderFigures, order_across_restarts
from mesh.chaos.registry import REREGISTER_WITHIN_S, RegistryFigures, registry_killed
from mesh.config import MeshConfig
from mesh.runtime import Mesh

__all__ = ["ChaosReport", "Figure", "main", "run_chaos"]


@dataclass(frozen=True)
class Figure:
    """One line of the table: what was measured, its value, and the target if there is one."""

    scenario: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass
class ChaosReport:
    """The figures of every scenario of one run."""

    quick: bool
    conversation: ConversationFigures
    order: OrderFigures
    registry: RegistryFigures
    hung: list[HungFigures]

    def figures(self) -> list[Figure]:
        """Return the table's lines, scenario by scenario."""
        return [
            *_conversation(self.conversation),
            *_order(self.order),
            *_registry(self.registry),
            *(line for hung in self.hung for line in _hung(hung)),
        ]

    def table(self) -> Table:
        """Return the figures as a rich table."""
        form = "CI form (--quick)" if self.quick else "full form"
        table = Table(title=f"raymesh chaos: reliability figures, {form}")
        for column in ("scenario", "figure", "measured", "target", "met"):
            table.add_column(column, justify="left" if column != "measured" else "right")
        shown = ""
        for line in self.figures():
            if line.scenario != shown and shown:
                table.add_section()
            met = "" if line.met is None else ("yes" if line.met else "NO")
            scenario = line.scenario if line.scenario != shown else ""
            table.add_row(scenario, line.figure, line.value, line.target, met)
            shown = line.scenario
        return table

    def all_met(self) -> bool:
        """True when every figure with a target met it."""
        return all(line.met is not False for line in self.figures())

    def write_json(self, path: Path) -> None:
        """Write the raw figures and the table's lines to `path`."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["figures"] = [dataclasses.asdict(line) for line in self.figures()]
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


async def run_chaos(
    mesh: Mesh, *, quick: bool, progress: Callable[[str], None] = lambda _: None
) -> ChaosReport:
    """Run every scenario, in its CI form when `quick`, and return the figures."""
    progress("chaos conversation")
    conversation = await chaos_conversation(
        mesh, asks=2_000 if quick else 10_000, kill_every_s=1.0 if quick else 0.5
    )
    progress("per-pair order across restarts")
    order = await order_across_restarts(mesh, messages=1_000 if quick else 5_000,
                                        kills=3 if quick else 5)  # fmt: skip
    progress("registry killed during traffic")
    registry = await registry_killed(mesh, kills=3 if quick else 10)
    hung = []
    for fault in ("blocked loop", "SIGSTOP"):
        progress(f"hung agent: {fault}")
        hung.append(await hung_agent(mesh, fault=fault))
    return ChaosReport(quick, conversation, order, registry, hung)


def main(*, quick: bool, json_path: Path | None = None) -> int:
    """Run the suite on a local Ray of its own, print the table; 1 if a target was missed."""
    err = Console(stderr=True)

    async def run() -> ChaosReport:
        # The agents' own warnings (every kill logs some) would bury the table.
        config = MeshConfig(log_level="error")
        async with Mesh.local(config=config, num_cpus=2, log_to_driver=False) as mesh:
            return await run_chaos(mesh, quick=quick, progress=lambda s: err.print(f"[dim]{s}[/]"))

    report = asyncio.run(run())
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a file or a pipe: one line per figure
    out.print(report.table())
    if json_path is not None:
        report.write_json(json_path)
    return 0 if report.all_met() else 1


def _ms(value: float | None) -> str:
    return "none reached" if value is None else f"{value:.0f} ms"


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _share(count: int, total: int) -> str:
    return f"{count / total:.1%} ({count:,})" if total else "0"


def _conversation(c: ConversationFigures) -> list[Figure]:
    name = (
        f"chaos conversation: {c.agents} agents, {c.asks:,} asks, a kill every {c.kill_every_s:g} s"
    )
    lines = [
        Figure(
            name,
            "asks ended in a reply or a typed error",
            _share(c.asks - c.hung - c.untyped, c.asks),
            "100%",
            c.hung == 0 and c.untyped == 0,
        ),
        Figure(name, "agents killed", str(c.kills)),
        Figure(name, "replies", _share(c.replies, c.asks)),
    ]
    lines += [Figure(name, f"typed error: {error}", _share(count, c.asks))
              for error, count in sorted(c.errors.items(), key=lambda e: -e[1])]  # fmt: skip
    lines += [Figure(name, f"sent again after {error} (never ran)", f"{count:,}")
              for error, count in sorted(c.retries.items())]  # fmt: skip
    lines += [
        Figure(name, "hung", str(c.hung), "0", c.hung == 0),
        Figure(
            name,
            f"ended at their deadline ({c.at_deadline}): p99 of lateness",
            _ms(c.overshoot_p99_ms),
            "<= 100 ms",
            c.overshoot_p99_ms is None or c.overshoot_p99_ms <= 100,
        ),
        Figure(
            name,
            "max of lateness at the deadline",
            _ms(c.overshoot_max_ms),
            "<= 1000 ms",
            c.overshoot_max_ms is None or c.overshoot_max_ms <= 1000,
        ),
        Figure(name, "run time", f"{c.seconds:.1f} s"),
    ]
    return lines


def _order(o: OrderFigures) -> list[Figure]:
    name = f"per-pair order: {o.messages:,} asks A->B, B killed {o.kills} times"
    gaps = ", ".join(f"{error} {count}" for error, count in sorted(o.errors.items())) or "none"
    return [
        Figure(name, "handled, in incarnations", f"{o.handled:,} in {o.incarnations}"),
        Figure(name, "reorders within an incarnation", str(o.reorders), "0", o.reorders == 0),
        Figure(name, "gaps, each a typed error", f"{o.gaps:,}: {gaps}"),
        Figure(name, "gaps without an error (hidden)", str(o.unreported), "0", o.unreported == 0),
    ]


def _registry(r: RegistryFigures) -> list[Figure]:
    name = f"registry killed {r.kills} times during traffic between {r.agents} agents"
    failed = sum(r.failed.values())
    detail = ", ".join(f"{e} {n}" for e, n in sorted(r.failed.items()))
    return [
        Figure(name, "agent-to-agent asks answered", f"{r.messages:,}"),
        Figure(
            name,
            "agent-to-agent asks failed",
            f"{failed}{f' ({detail})' if detail else ''}",
            "0",
            failed == 0,
        ),
        Figure(
            name,
            f"kills after which all re-registered within {REREGISTER_WITHIN_S:g} s",
            f"{r.reregistered}/{r.kills}",
            "all",
            r.reregistered == r.kills,
        ),
        Figure(
            name,
            "re-registration: median / max",
            f"{_s(r.reregister_median_s)} / {_s(r.reregister_max_s)}",
        ),
    ]


def _hung(h: HungFigures) -> list[Figure]:
    name = f"hung agent: {h.fault}"
    typed = h.replies + sum(h.errors.values())
    errors = ", ".join(f"{e} {n}" for e, n in sorted(h.errors.items())) or "none"
    return [
        Figure(
            name,
            "detected (by the supervisor)",
            _s(h.detected_s),
            "<= 2 s",
            h.detected_s is not None and h.detected_s <= 2,
        ),
        Figure(
            name,
            "replaced (successor answers)",
            _s(h.replaced_s),
            "<= 10 s",
            h.replaced_s is not None and h.replaced_s <= 10,
        ),
        Figure(
            name,
            "asks to it ended typed",
            f"{typed}/{h.asks}: {errors}",
            "all",
            typed == h.asks and h.hung == 0,
        ),
        Figure(
            name,
            "max lateness at the deadline",
            _ms(h.overshoot_max_ms),
            "<= 1000 ms",
            h.overshoot_max_ms is None or h.overshoot_max_ms <= 1000,
        ),
    ]
