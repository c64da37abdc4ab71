"""The `raymesh bench` and `raymesh chaos` commands, plugged into the CLI by entry point.

Declared under ``raymesh.commands`` in pyproject.toml, so that the runtime's CLI finds them
without importing the suites, and their flags live beside the suites they drive. ``bench``
is also ``python -m benchmarks``: its flags are defined here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from benchmarks import DEFAULT_COUNT, SUITES
from benchmarks.peer import PIN
from mesh import ConfigError, MeshError

__all__ = ["bench", "chaos"]


def bench(  # noqa: PLR0917 (typer maps each parameter to an option)
    suites: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Suites: {', '.join(SUITES)}.",
            show_default="all",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="topology: N in {2, 8}, 1 KiB (under a minute); tls: the same, one round; "
            "gateway: 100 requests per level.",
        ),
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="topology, tls: N up to 32, payloads up to 64 KiB.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="topology: plot throughput and latency (matplotlib)."),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            help=f"Messages per stream (default {DEFAULT_COUNT:,}; topology: per measurement).",
            show_default=False,
        ),
    ] = None,
    no_peer: Annotated[
        bool,
        typer.Option(
            "--no-peer",
            help="topology: skip the autogen-core baseline (it installs into its own "
            f"virtualenv on first use, which needs the package index: {PIN}).",
        ),
    ] = False,
    repeats: Annotated[int, typer.Option(help="Samples per latency figure.")] = 20,
    agents: Annotated[
        list[int] | None,
        typer.Option(
            "--agents",
            help="topology, tls, patterns: an agent count instead of the preset (repeat).",
            show_default="the preset",
        ),
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="two-agents: also measure the cost of signed frames.")
    ] = False,
    overload_s: Annotated[
        float, typer.Option(help="overload: seconds of flooding per mailbox policy.")
    ] = 30.0,
    cross_node: Annotated[
        bool,
        typer.Option("--cross-node", help="topology: also mesh vs hub on a two-node cluster."),
    ] = False,
) -> None:
    """Measure raymesh against its baselines (mesh vs hub, raw Ray, autogen-core).

    The `tls` suite runs the topology workload on a plain and on a TLS Ray, each in a
    process of its own, and reports TLS / plain throughput.

    Also `python -m benchmarks`, with the same flags.
    """
    from benchmarks.runner import Options, run

    unknown = sorted(set(suites or ()) - set(SUITES))
    if unknown:
        raise typer.BadParameter(
            f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}"
        )
    if quick and full:
        raise typer.BadParameter("--quick and --full exclude each other")
    if agents and min(agents) < 2:
        raise typer.BadParameter("a ring needs at least 2 agents", param_hint="--agents")
    chosen = tuple(suites or SUITES)
    if plot and "topology" not in chosen:
        raise typer.BadParameter("draws the topology suite: add `topology` to the suites",
                                 param_hint="--plot")  # fmt: skip
    options = Options(suites=chosen, count=count, repeats=repeats, quick=quick, full=full,
                      agents=tuple(agents or ()), sign=sign, overload_s=overload_s,
                      json=json_path, cross_node=cross_node, no_peer=no_peer,
                      plot=plot)  # fmt: skip
    try:
        run(options)
    except MeshError as exc:
        _fail(exc)


def chaos(
    quick: Annotated[
        bool, typer.Option("--quick", help="The CI form: 2,000 asks, fewer kills.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this scenario (repeatable); an unknown name lists them.",
            show_default="all",
        ),
    ] = None,
) -> None:
    """Inject faults into a local mesh; print the figures.

    Kills, hangs, a lost registry, prompt injection against an obedient model, and
    canary keys swept for afterwards (`secrets`, last).

    Exits with 1 if a figure misses its target.
    """
    from benchmarks.chaos.report import main as chaos_main

    try:
        raise typer.Exit(chaos_main(quick=quick, only=only or (), json_path=json_path))
    except ConfigError as exc:
        _fail(exc)


def _fail(exc: MeshError) -> NoReturn:
    # Imported here: the CLI loads this module as its plugin, and `python -m benchmarks`
    # imports this module first.
    from mesh.cli import fail

    fail(exc)
