"""``raymesh submit``, ``jobs``, ``logs`` and ``stop``: team runs as jobs on a Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from mesh.cli._console import err, fail, out
from mesh.errors import MeshError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``submit``, ``jobs``, ``logs`` and ``stop`` to the ``raymesh`` app."""
    app.command("submit")(submit)
    app.command("jobs")(jobs)
    app.command("logs")(logs_)
    app.command("stop")(stop)


_ADDRESS_HELP = (
    "The cluster's Jobs API (http://HEAD:8265). Default: $RAY_ADDRESS, else the cluster "
    "`raymesh up` started."
)
JobAddress = Annotated[
    str | None, typer.Option("--address", "-a", help=_ADDRESS_HELP, show_default=False)
]


def submit(  # noqa: PLR0917 (typer maps each parameter to an option)
    team_file: Annotated[Path, typer.Argument(help="The team YAML file.", show_default=False)],
    task: Annotated[str, typer.Option("--task", "-t", help="The task for the entry agent.")],
    address: JobAddress = None,
    follow: Annotated[
        bool, typer.Option(help="Stream the job's logs; exit with its status.")
    ] = False,
    working_dir: Annotated[
        Path | None,
        typer.Option(help="Directory uploaded with the job.", show_default="the team file's"),
    ] = None,
    pip: Annotated[
        list[str] | None, typer.Option(help="A package to pip install in the job (repeat).")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            help="K=V, or K to pass this environment's value (repeat). No secrets: they "
            "would be kept in the job's runtime_env."
        ),
    ] = None,
    secrets_file: Annotated[
        str | None,
        typer.Option(
            help="Absolute path of a 0600 secrets file on the cluster's nodes; the job "
            "reads its keys from it (only the path is sent).",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="A file or folder of the working directory not to upload (a gitignore "
            "pattern; repeat)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds the task may take.")] = 120.0,
    python: Annotated[
        str, typer.Option(help="The interpreter on the cluster that has raymesh.")
    ] = "python",
) -> None:
    """Submit a team run to a Ray cluster as a job (through the Ray Jobs API).

    An --env that looks like a secret (by its name or value, or a URL with a password)
    is refused, and so is a working directory holding key files (.env*, *.pem, *.key,
    id_*) unless --exclude leaves them out: keys live on the cluster (`raymesh up
    --secrets-file`, or --secrets-file here naming a file there).
    """
    from mesh.ops import job_client, parse_env, refuse_key_files, submit_team, version_mismatch

    try:
        variables = parse_env(env or [])
        # Both refusals come before the cluster is contacted.
        refuse_key_files((working_dir or team_file.parent).resolve(), exclude or [])
        with err.status("connecting to the Jobs API"):
            client = job_client(address)
        if warning := version_mismatch(client):
            err.print(f"[yellow]warning:[/yellow] {warning}")
        with err.status("uploading the working directory and submitting"):
            job_id = submit_team(
                client, team_file, task, working_dir=working_dir, pip=pip or [],
                env=variables, secrets_file=secrets_file, excludes=exclude or [],
                timeout=timeout, python=python,
            )  # fmt: skip
    except MeshError as exc:
        fail(exc)
    out.print(f"job {job_id} submitted")
    if not follow:
        out.print(f"  raymesh logs {job_id}    raymesh stop {job_id}")
        return
    _follow(client, job_id)


def _follow(client: Any, job_id: str) -> NoReturn:
    from mesh.ops import follow_job

    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    try:
        status, message = follow_job(client, job_id, on_line=show)
    except KeyboardInterrupt:
        err.print(f"[yellow]stopped following; the job runs on[/yellow] "
                   f"(raymesh stop {job_id})")  # fmt: skip
        raise typer.Exit(130) from None
    except MeshError as exc:
        fail(exc)
    if status == "SUCCEEDED":
        err.print(f"[green]job {job_id} succeeded[/green]")
        raise typer.Exit(0)
    err.print(
        f"[red]job {job_id} {status.lower()}[/red]: {message.splitlines()[0] if message else ''}"
    )
    err.print("last log lines:")
    for line in lines[-20:]:
        err.print(f"  {line}", markup=False, highlight=False)
    raise typer.Exit(1)


def jobs(
    address: JobAddress = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the cluster's jobs."""
    import dataclasses
    from datetime import datetime

    from mesh.ops import job_client, list_jobs

    try:
        rows = list_jobs(job_client(address))
    except MeshError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    table = Table(title="jobs")
    for column in ("job", "status", "started", "took", "entrypoint"):
        table.add_column(column, overflow="fold")
    colors = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "STOPPED": "yellow"}
    for row in rows:
        started = (
            datetime.fromtimestamp(row.start_time).strftime("%H:%M:%S") if row.start_time else ""
        )
        took = f"{row.end_time - row.start_time:.1f} s" if row.start_time and row.end_time else ""
        color = colors.get(row.status, "white")
        table.add_row(row.job_id, f"[{color}]{row.status}[/{color}]", started, took,
                      row.entrypoint)  # fmt: skip
    out.print(table)


def logs_(
    job_id: Annotated[str, typer.Argument(help="The job id.", show_default=False)],
    address: JobAddress = None,
    follow: Annotated[bool, typer.Option(help="Stream until the job ends.")] = False,
) -> None:
    """Print a job's logs."""
    from mesh.ops import job_client, job_logs

    try:
        client = job_client(address)
        if follow:
            _follow(client, job_id)
        text = job_logs(client, job_id)
    except MeshError as exc:
        fail(exc)
    typer.echo(text, nl=not text.endswith("\n"))


def stop(
    job_id: Annotated[str, typer.Argument(help="The job id.", show_default=False)],
    address: JobAddress = None,
) -> None:
    """Stop a running job."""
    from mesh.ops import job_client, stop_job

    try:
        stopped = stop_job(job_client(address), job_id)
    except MeshError as exc:
        fail(exc)
    out.print(f"job {job_id} " + ("stopping" if stopped else "had already ended"))
