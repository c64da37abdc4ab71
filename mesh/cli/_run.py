"""``raymesh run``: a team on one task, printed; the work is `Mesh.run`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mesh._compat import inside_ray_job
from mesh.cli._console import err, fail, out
from mesh.control import TeamSpec
from mesh.edge import Mesh, RunOutcome
from mesh.errors import MeshError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``run`` to the ``raymesh`` app."""
    app.command("run")(run)


def run(  # noqa: PLR0917 (typer maps each parameter to an option)
    team_file: Annotated[Path, typer.Argument(help="The team YAML file.", show_default=False)],
    task: Annotated[str, typer.Option("--task", "-t", help="The task for the entry agent.")],
    timeout: Annotated[float, typer.Option(help="Seconds the task may take.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    logs: Annotated[bool, typer.Option(help="Show the agents' log lines.")] = False,
    address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (HOST:PORT, or `auto` for the one this job runs in) "
            "instead of starting a local Ray.",
            show_default="a local Ray",
        ),
    ] = None,
    dev: Annotated[
        bool, typer.Option(help="Allow RAY_AUTH_MODE=disabled for the local Ray (loopback only).")
    ] = False,
    stream: Annotated[bool, typer.Option(help="Print the answer as it forms.")] = False,
) -> None:
    """Start a team, give its entry agent a task, print the result, stop the team.

    By default on a local Ray started for the run; with --address on a cluster (inside
    a job submitted by `raymesh submit`, --address auto). Ctrl-C stops the team in
    order (children in reverse start order).
    """
    from mesh.control import load_team
    from mesh.ops import save_trace

    try:
        spec = load_team(team_file)  # a bad file fails here, before Ray starts
        joining = "starting a local Ray" if address in (None, "local") else (
            f"joining the Ray cluster at {address}")  # fmt: skip
        with err.status(joining) as progress:

            def show(text: str) -> None:  # the answer as it forms, the spinner gone
                progress.stop()
                out.print(text, end="", markup=False, highlight=False, soft_wrap=True)

            here = team_file.resolve().parent
            streaming = show if stream and not as_json else None
            running = _run_on_own_mesh(spec, task, timeout, progress.update, team_dir=here,
                                       address=address, logs=logs, dev=dev,
                                       on_text=streaming)  # fmt: skip
            outcome = asyncio.run(running)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: the team was stopped[/yellow]")
        raise typer.Exit(130) from None
    except MeshError as exc:
        fail(exc)
    save_trace(outcome.spans)  # for `raymesh trace` after this mesh has gone
    if as_json:
        typer.echo(json.dumps(outcome.as_json(), indent=2, default=str))
        return
    if streaming is not None:
        out.print()
    _print_outcome(outcome, answered=streaming is not None)


async def _run_on_own_mesh(
    spec: TeamSpec,
    task: str,
    timeout: float,
    on_step: Callable[[str], object],
    *,
    team_dir: Path,
    address: str | None,
    logs: bool,
    dev: bool,
    on_text: Callable[[str], object] | None = None,
) -> RunOutcome:
    """`Mesh.run` on a mesh of this process's own, then shut down (its Ray too, if it began one)."""
    mesh = _mesh_for(team_dir, address, logs=logs, dev=dev)
    try:
        return await mesh.run(spec, task, timeout=timeout, on_step=on_step, on_text=on_text)
    finally:
        await mesh.shutdown()


def _mesh_for(team_dir: Path, address: str | None, *, logs: bool, dev: bool) -> Mesh:
    # Agent modules next to the team file must be importable in every Ray worker too.
    if address not in (None, "local"):
        # Inside a job, the job's runtime_env already ships the working dir to workers;
        # a driver elsewhere ships the team file's directory itself.
        in_job = inside_ray_job()
        options: dict[str, Any] = {} if in_job else {"runtime_env": {"working_dir": str(team_dir)}}
        return Mesh.connect(address, log_to_driver=logs, **options)
    path = os.pathsep.join(p for p in (str(team_dir), os.environ.get("PYTHONPATH", "")) if p)
    return Mesh.local(runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=logs, dev=dev)


def _print_outcome(outcome: RunOutcome, *, answered: bool = False) -> None:
    # The answer is a model's text: printed as it is (no markup); `run_team` masked it.
    if not answered:  # not already printed as it formed
        out.print(outcome.result.text, style="bold", markup=False)
    for key, value in outcome.result.data.items():
        out.print(f"  {key}: {value}", markup=False)
    out.print(f"trace id: {outcome.trace_id}  (raymesh trace {outcome.trace_id})")
    out.print(_agents_table(outcome))
    total = outcome.usage.total
    if total.calls:
        estimated = f", {total.estimated_calls} estimated" if total.estimated_calls else ""
        out.print(f"model calls: {total.calls}, {total.input_tokens + total.output_tokens} "
                  f"tokens{estimated}, ${total.cost_usd:.4f}")  # fmt: skip


def _agents_table(outcome: RunOutcome) -> Table:
    table = Table(title=f"team {outcome.team}")
    columns = ("team", "agent", "restarts", "handled", "sent", "failed", "tokens", "cost $")
    for column in columns:
        table.add_column(column, justify="right" if column in columns[2:] else "left")
    for agent in outcome.agents:
        cost = "" if agent.cost_usd is None else f"{agent.cost_usd:.4f}"
        table.add_row(agent.team, agent.name, str(agent.restarts), _blank(agent.handled),
                      _blank(agent.sent), _blank(agent.failed), _blank(agent.tokens),
                      cost)  # fmt: skip
    return table


def _blank(value: int | None) -> str:
    return "" if value is None else str(value)
