"""The `raymesh bench` and `raymesh chaos` commands, plugged into the CLI by entry point.

Declared under ``raymesh.commands`` in pyproject.toml, so that the runtime's CLI finds them
without importing the suites, and their flags live beside the suites they drive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchmarks import SUITES
from mesh import ConfigError, MeshError
from mesh.cli import fail

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
        bool, typer.Option("--quick", help="topology: N in {2, 8}, 1 KiB (under a minute).")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="topology: N up to 32, payloads up to 64 KiB.")
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
        typer.Option(help="Messages per stream (topology: per measurement).", show_default=False),
    ] = None,
    no_peer: Annotated[
        bool,
        typer.Option(
            "--no-peer",
            help="topology: skip the autogen-core baseline (it installs into its own "
            "virtualenv on first use, which needs the package index).",
        ),
    ] = False,
) -> None:
    """Measure raymesh against its baselines (mesh vs hub, raw Ray, autogen-core).

    Forwards to `python -m benchmarks`.
    """
    from benchmarks.__main__ import main as bench_main

    argv = list(suites or [])
    argv += ["--quick"] if quick else []
    argv += ["--full"] if full else []
    argv += ["--json", str(json_path)] if json_path else []
    argv += ["--plot", str(plot)] if plot else []
    argv += ["--count", str(count)] if count is not None else []
    argv += ["--no-peer"] if no_peer else []
    try:
        bench_main(argv, prog="raymesh bench")
    except MeshError as exc:
        fail(exc)


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
        fail(exc)
