"""The whole chaos suite in one run, and its figures as a table and as JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.chaos._figure import Figure, Figures
from benchmarks.chaos.conversation import ConversationFigures, chaos_conversation
from benchmarks.chaos.exactly_once import ExactlyOnceFigures, exactly_once
from benchmarks.chaos.expiry import ExpiryFigures, late_and_expired
from benchmarks.chaos.forged import ForgedFigures, forged_frames
from benchmarks.chaos.fuzz import FuzzFigures, fuzz_agent
from benchmarks.chaos.hung import HungFigures, hung_agent
from benchmarks.chaos.injection import InjectionFigures, prompt_injection
from benchmarks.chaos.order import OrderFigures, order_across_restarts
from benchmarks.chaos.overload import OverloadFigures, overload
from benchmarks.chaos.registry import RegistryFigures, registry_killed
from benchmarks.chaos.secrets import SecretsFigures, secrets_sweep
from mesh.config import MeshConfig
from mesh.edge import Mesh
from mesh.errors import ConfigError

__all__ = ["SCENARIOS", "ChaosReport", "Figure", "Scenario", "main", "run_chaos", "select"]


@dataclass(frozen=True)
class Scenario:
    """One scenario of the suite: its name for ``--only``, and how to run each form."""

    name: str
    title: str
    run: Callable[[Mesh, bool], Awaitable[Sequence[Figures]]]


async def _conversation(mesh: Mesh, quick: bool) -> list[ConversationFigures]:
    asks, kill_every_s = (2_000, 1.0) if quick else (10_000, 0.5)
    return [await chaos_conversation(mesh, asks=asks, kill_every_s=kill_every_s)]


async def _exactly_once(mesh: Mesh, quick: bool) -> list[ExactlyOnceFigures]:
    # The CI form is half the conversation's: a kill every second keeps agents down
    # longer as the load rises, and 2,000 asks took minutes on the shared machine.
    asks, kill_every_s = (1_000, 1.0) if quick else (10_000, 0.5)
    return [await exactly_once(mesh, asks=asks, kill_every_s=kill_every_s)]


async def _order(mesh: Mesh, quick: bool) -> list[OrderFigures]:
    messages, kills = (1_000, 3) if quick else (5_000, 5)
    return [await order_across_restarts(mesh, messages=messages, kills=kills)]


async def _registry(mesh: Mesh, quick: bool) -> list[RegistryFigures]:
    return [await registry_killed(mesh, kills=3 if quick else 10)]


async def _hung(mesh: Mesh, quick: bool) -> list[HungFigures]:
    return [await hung_agent(mesh, fault=fault) for fault in ("blocked loop", "SIGSTOP")]


async def _fuzz(mesh: Mesh, quick: bool) -> list[FuzzFigures]:
    # Quiet and flood phases alternate, so that the machine's other work falls on both
    # alike; each phase has enough asks for a p98 (quick) or a p99 (see `fuzz_agent`).
    frames, baseline_asks, rounds = (20_000, 600, 3) if quick else (100_000, 2_000, 4)
    return [await fuzz_agent(mesh, frames=frames, baseline_asks=baseline_asks, rounds=rounds,
                             every_s=0.005)]  # fmt: skip


async def _forged(mesh: Mesh, quick: bool) -> list[ForgedFigures]:
    return [await forged_frames(mesh, frames=20 if quick else 100)]


async def _expiry(mesh: Mesh, quick: bool) -> list[ExpiryFigures]:
    return [await late_and_expired(mesh, asks=10 if quick else 100)]


async def _overload(mesh: Mesh, quick: bool) -> list[OverloadFigures]:
    if quick:  # a smaller bound, reached within seconds
        return await overload(mesh, seconds=3, mailbox_size=128, max_outbox=500)
    return await overload(mesh, seconds=30)


async def _injection(mesh: Mesh, quick: bool) -> list[InjectionFigures]:
    return [await prompt_injection(mesh, budgets=(200,) if quick else (200, 500, 1_000))]


async def _secrets(mesh: Mesh, quick: bool) -> list[SecretsFigures]:
    return [await secrets_sweep(mesh, rounds=3 if quick else 20)]


#: The suite, in the order it runs and its table reads. `secrets` comes last: it
#: sweeps for what every scenario before it left behind.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("conversation", "chaos conversation", _conversation),
    Scenario("exactly_once", "at-least-once + dedup under kills", _exactly_once),
    Scenario("order", "per-pair order across restarts", _order),
    Scenario("registry", "registry killed during traffic", _registry),
    Scenario("hung", "hung agents", _hung),
    Scenario("fuzz", "bad frames at a live agent", _fuzz),
    Scenario("forged", "forged frames at a signed agent", _forged),
    Scenario("expiry", "late replies and expired requests", _expiry),
    Scenario("overload", "overload: 10x the consumer's speed", _overload),
    Scenario("injection", "prompt injection against an obedient model", _injection),
    Scenario("secrets", "canary keys, then a sweep for them", _secrets),
)


@dataclass
class ChaosReport:
    """The figures of every scenario of one run, by scenario name."""

    quick: bool
    results: dict[str, Sequence[Figures]] = field(default_factory=dict)

    def figures(self) -> list[Figure]:
        """Return the table's lines, scenario by scenario."""
        return [line for found in self.results.values() for each in found for line in each.lines()]

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
        data: dict[str, Any] = {
            "quick": self.quick,
            "scenarios": {
                name: [dataclasses.asdict(each) for each in found]  # type: ignore[call-overload]
                for name, found in self.results.items()
            },
            "figures": [dataclasses.asdict(line) for line in self.figures()],
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def select(only: Sequence[str] = ()) -> list[Scenario]:
    """Return the scenarios named in `only` (all when empty), in the suite's order.

    Raises:
        ConfigError: A name is not a scenario of the suite.
    """
    known = {scenario.name for scenario in SCENARIOS}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(
            f"no chaos scenario named {', '.join(map(repr, unknown))}",
            hint=f"choose from {', '.join(sorted(known))}",
        )
    return [scenario for scenario in SCENARIOS if not only or scenario.name in only]


async def run_chaos(
    mesh: Mesh,
    *,
    quick: bool,
    only: Sequence[str] = (),
    progress: Callable[[str], None] = lambda _: None,
) -> ChaosReport:
    """Run the scenarios (all, or those in `only`), in their CI forms when `quick`."""
    report = ChaosReport(quick)
    for scenario in select(only):
        progress(scenario.title)
        report.results[scenario.name] = await scenario.run(mesh, quick)
    return report


def main(*, quick: bool, only: Sequence[str] = (), json_path: Path | None = None) -> int:
    """Run the suite on a local Ray of its own, print the table; 1 if a target was missed."""
    err = Console(stderr=True)

    select(only)  # an unknown name fails before Ray starts

    async def run() -> ChaosReport:
        # The agents' own warnings (every kill logs some) would bury the table.
        config = MeshConfig(log_level="error")
        async with Mesh.local(config=config, num_cpus=2, log_to_driver=False) as mesh:
            return await run_chaos(
                mesh, quick=quick, only=only, progress=lambda s: err.print(f"[dim]{s}[/]")
            )

    report = asyncio.run(run())
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a file or a pipe: one line per figure
    out.print(report.table())
    if json_path is not None:
        report.write_json(json_path)
    return 0 if report.all_met() else 1
