"""The ``raymesh`` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mesh.errors import MeshError

app = typer.Typer(
    name="raymesh",
    help="Actor-model, peer-to-peer mesh runtime for multi-agent, multi-LLM systems on Ray.",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console()
_err = Console(stderr=True)


@app.callback()
def main() -> None:
    """Start, inspect and measure raymesh agent meshes."""


@app.command("version")
def show_version() -> None:
    """Print the versions of raymesh and Ray."""
    import ray

    typer.echo(f"raymesh {version('raymesh')} (ray {ray.__version__})")


@app.command("run")
def run(
    team_file: Annotated[Path, typer.Argument(help="The team YAML file.", show_default=False)],
    task: Annotated[str, typer.Option("--task", "-t", help="The task for the entry agent.")],
    timeout: Annotated[float, typer.Option(help="Seconds the task may take.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    logs: Annotated[bool, typer.Option(help="Show the agents' log lines.")] = False,
) -> None:
    """Start a team on a local Ray, give its entry agent a task, print the result, stop it.

    Ctrl-C stops the team in order (children in reverse start order).
    """
    from mesh.team import load_team

    try:
        spec = load_team(team_file)  # a bad file fails here, before Ray starts
        here = str(team_file.resolve().parent)
        outcome = asyncio.run(_run_team(spec, here, task, timeout, logs=logs))
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted: the team was stopped[/yellow]")
        raise typer.Exit(130) from None
    except MeshError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
        return
    _print_outcome(outcome)


async def _run_team(
    spec: Any, team_dir: str, task: str, timeout: float, *, logs: bool
) -> dict[str, Any]:
    from mesh.runtime import Mesh
    from protocols import Result, Task, new_trace_id

    # Agent modules next to the team file are importable in every Ray worker too.
    path = os.pathsep.join(p for p in (team_dir, os.environ.get("PYTHONPATH", "")) if p)
    with _err.status("starting a local Ray"):
        mesh = Mesh.local(runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=logs)
    try:
        with _err.status(f"starting team {spec.name!r}"):
            team = await mesh.team(spec)
        trace_id = new_trace_id()
        with _err.status(f"{team.entry} is working on the task"):
            request = mesh.ask(
                team.entry, Task(text=task), timeout=timeout, trace_id=trace_id, expect=Result
            )
            asking = asyncio.ensure_future(request)
            failing = asyncio.ensure_future(team.wait())
            done, _ = await asyncio.wait([asking, failing], return_when=asyncio.FIRST_COMPLETED)
            if failing in done:
                asking.cancel()
                failing.result()  # raises the team's failure
            failing.cancel()
            result = asking.result()
        members = []
        for row in await team.members():
            if row["kind"] == "agent" and row["running"]:
                stats = await mesh.stats(row["name"])
                row |= {"received": stats.received, "handled": stats.handled,
                        "sent": stats.sent, "failed": stats.failed}  # fmt: skip
            members.append(row)
        return {"team": spec.name, "entry": team.entry, "trace_id": trace_id,
                "result": result.model_dump(), "members": members}  # fmt: skip
    finally:
        with _err.status("stopping the team"):
            await mesh.shutdown()


def _print_outcome(outcome: dict[str, Any]) -> None:
    result = outcome["result"]
    _out.print(f"[bold]{result['text']}[/bold]")
    for key, value in result["data"].items():
        _out.print(f"  {key}: {value}")
    _out.print(f"trace id: {outcome['trace_id']}")
    table = Table(title=f"team {outcome['team']}")
    columns = ("team", "agent", "incarnation", "restarts", "received", "handled", "sent", "failed")
    for column in columns:
        table.add_column(column, justify="right" if column in columns[3:] else "left")
    for row in outcome["members"]:
        if row["kind"] != "agent":
            continue
        table.add_row(row["team"], row["name"], str(row["incarnation"])[:8], str(row["restarts"]),
                      *(str(row.get(k, "")) for k in columns[4:]))  # fmt: skip
    _out.print(table)


if __name__ == "__main__":
    sys.exit(app())
