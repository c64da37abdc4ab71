"""The ``raymesh`` command."""

from __future__ import annotations

import asyncio
import json
import os
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from mesh.cli._approvals import register as register_approval_commands
from mesh.cli._console import console
from mesh.cli._options import Address, AsJson, Namespace
from mesh.errors import MeshError

app = typer.Typer(
    name="raymesh",
    help="Actor-model, peer-to-peer mesh runtime for multi-agent, multi-LLM systems on Ray.",
    no_args_is_help=True,
    add_completion=False,
)
_out = console()
_err = console(stderr=True)
register_approval_commands(app)


@app.callback()
def main() -> None:
    """Start, inspect and measure raymesh agent meshes."""


@app.command("version")
def show_version() -> None:
    """Print the versions of raymesh and Ray."""
    import ray

    typer.echo(f"raymesh {version('raymesh')} (ray {ray.__version__})")


@app.command("run")
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
) -> None:
    """Start a team, give its entry agent a task, print the result, stop the team.

    By default on a local Ray started for the run; with --address on a cluster (inside
    a job submitted by `raymesh submit`, --address auto). Ctrl-C stops the team in
    order (children in reverse start order).
    """
    from mesh.control import load_team

    try:
        spec = load_team(team_file)  # a bad file fails here, before Ray starts
        here = str(team_file.resolve().parent)
        outcome = asyncio.run(_run_team(spec, here, task, timeout, logs=logs, address=address))
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted: the team was stopped[/yellow]")
        raise typer.Exit(130) from None
    except MeshError as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}")  # "[agent=..]" is no markup
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
        return
    _print_outcome(outcome)


async def _run_team(
    spec: Any, team_dir: str, task: str, timeout: float, *, logs: bool, address: str | None
) -> dict[str, Any]:
    from mesh._compat import inside_ray_job
    from mesh.edge import Mesh
    from mesh.ops import save_trace, settled_trace
    from protocols import Result, Task, new_trace_id

    if address not in (None, "local"):
        # Inside a job, the job's runtime_env already ships the working dir to workers;
        # a driver elsewhere ships the team file's directory itself.
        in_job = inside_ray_job()
        options: dict[str, Any] = {} if in_job else {"runtime_env": {"working_dir": team_dir}}
        with _err.status(f"joining the Ray cluster at {address}"):
            mesh = Mesh.connect(address, log_to_driver=logs, **options)
    else:
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
        members = [row for row in await team.members() if row["kind"] == "agent"]
        for row in members:  # the counters first: the usage queries below are messages too
            if row["running"]:
                stats = await mesh.stats(row["name"])
                row |= {"received": stats.received, "handled": stats.handled,
                        "sent": stats.sent, "failed": stats.failed}  # fmt: skip
        names = [row["name"] for row in members if row["running"]]
        usage = await mesh.usage(names=names, trace_id=trace_id)
        for row in members:
            spent = usage.by_agent.get(row["name"])
            if spent is not None:
                row |= {"tokens": spent.input_tokens + spent.output_tokens,
                        "cost_usd": spent.cost_usd}  # fmt: skip
        if mesh.config.tracing:  # kept for `raymesh trace` after this mesh has gone
            save_trace(await settled_trace(mesh, trace_id))
        return {"team": spec.name, "entry": team.entry, "trace_id": trace_id,
                "result": result.model_dump(), "members": members,
                "usage": _usage_of(usage)}  # fmt: skip
    finally:
        with _err.status("stopping the team"):
            await mesh.shutdown()


def _usage_of(usage: Any) -> dict[str, Any]:
    total = usage.total
    return {"calls": total.calls, "tokens": total.input_tokens + total.output_tokens,
            "cost_usd": total.cost_usd, "estimated_calls": total.estimated_calls,
            "by_agent": {a: u.model_dump() for a, u in usage.by_agent.items()}}  # fmt: skip


def _print_outcome(outcome: dict[str, Any]) -> None:
    result = outcome["result"]
    _out.print(f"[bold]{result['text']}[/bold]")
    for key, value in result["data"].items():
        _out.print(f"  {key}: {value}")
    _out.print(f"trace id: {outcome['trace_id']}  (raymesh trace {outcome['trace_id']})")
    table = Table(title=f"team {outcome['team']}")
    columns = ("team", "agent", "restarts", "handled", "sent", "failed", "tokens", "cost $")
    for column in columns:
        table.add_column(column, justify="right" if column in columns[2:] else "left")
    for row in outcome["members"]:
        cost = f"{row['cost_usd']:.4f}" if "cost_usd" in row else ""
        table.add_row(row["team"], row["name"], str(row["restarts"]), str(row.get("handled", "")),
                      str(row.get("sent", "")), str(row.get("failed", "")),
                      str(row.get("tokens", "")), cost)  # fmt: skip
    _out.print(table)
    usage = outcome["usage"]
    if usage["calls"]:
        estimated = f", {usage['estimated_calls']} estimated" if usage["estimated_calls"] else ""
        _out.print(f"model calls: {usage['calls']}, {usage['tokens']} tokens{estimated}, "
                   f"${usage['cost_usd']:.4f}")  # fmt: skip


# -- clusters and jobs ---------------------------------------------------------------

_ADDRESS_HELP = (
    "The cluster's Jobs API (http://HEAD:8265). Default: $RAY_ADDRESS, else the cluster "
    "`raymesh up` started."
)
JobAddress = Annotated[
    str | None, typer.Option("--address", "-a", help=_ADDRESS_HELP, show_default=False)
]


def fail(exc: MeshError) -> NoReturn:
    """Print `exc` as the command's error and exit with 1 (for plugin commands too)."""
    _err.print(f"[red]error:[/red] {escape(str(exc))}")  # "[agent=..]" is no markup
    raise typer.Exit(1)


@app.command("up")
def up(  # noqa: PLR0917 (typer maps each parameter to an option)
    port: Annotated[
        int | None, typer.Option(help="The GCS port.", show_default="a free port")
    ] = None,
    dashboard_port: Annotated[
        int | None,
        typer.Option(help="The dashboard / Jobs API port.", show_default="a free port"),
    ] = None,
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs the head offers.", show_default="all")
    ] = None,
    block: Annotated[
        bool, typer.Option(help="Stay in the foreground; Ctrl-C stops the cluster.")
    ] = False,
    host: Annotated[
        str, typer.Option(help="Bind to this address; 0.0.0.0 exposes Ray's ports.")
    ] = "127.0.0.1",
    dev: Annotated[
        bool, typer.Option(help="Allow RAY_AUTH_MODE=disabled (loopback only).")
    ] = False,
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            help="A 0600 KEY=value file: its keys go into the head's environment, for its jobs.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a local Ray head with its dashboard and Jobs API on 127.0.0.1.

    What was started is recorded under $RAYMESH_HOME (default ~/.raymesh), so that
    `raymesh down` stops exactly that and nothing else. Keys for the cluster's jobs
    come from --secrets-file, never from `submit --env`.
    """
    from mesh.ops import live_head, start_head

    try:
        current = live_head()
        if current is not None:
            _out.print(f"[yellow]a cluster is already up[/yellow] at {current.address}, "
                       f"dashboard {current.dashboard_url}")  # fmt: skip
            _print_next_steps(current)
            return
        with _err.status("starting a Ray head (ray start --head)"):
            state = start_head(port=port, dashboard_port=dashboard_port,
                                       num_cpus=num_cpus, host=host, dev=dev,
                                       secrets_file=secrets_file)  # fmt: skip
    except MeshError as exc:
        fail(exc)
    _out.print(f"[green]cluster up[/green] (Ray {state.ray_version}, "
               f"{len(state.pids)} processes, temp dir {state.temp_dir})")  # fmt: skip
    _out.print(f"  address:   {state.address}")
    _out.print(f"  dashboard: {state.dashboard_url}")
    _print_next_steps(state)
    if block:
        _block_until_interrupted(state)


def _print_next_steps(state: Any) -> None:
    _out.print("next:")
    _out.print(f"  raymesh submit --address {state.dashboard_url} TEAM.yaml --task '...' --follow")
    _out.print(f"  raymesh status --address {state.address}")
    _out.print("  raymesh jobs")
    _out.print("  raymesh down")


def _block_until_interrupted(state: Any) -> None:
    import time

    from mesh.ops import live_head, stop_head

    _out.print("running in the foreground; Ctrl-C stops the cluster")
    try:
        while live_head() is not None:
            time.sleep(1.0)
        _err.print("[yellow]the cluster stopped[/yellow]")
    except KeyboardInterrupt:
        with _err.status("stopping the cluster"):
            stop_head(state)
        _out.print("cluster down")


@app.command("down")
def down() -> None:
    """Stop the cluster `raymesh up` started: its processes only (never `ray stop`)."""
    from mesh.ops import live_head, stop_head

    try:
        state = live_head()
        if state is None:
            _out.print("no cluster is up (nothing to stop)")
            return
        with _err.status(f"stopping the cluster at {state.address}"):
            stopped = stop_head(state)
    except MeshError as exc:
        fail(exc)
    _out.print(f"cluster down: stopped {len(stopped)} processes ({state.address})")


@app.command("submit")
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
    timeout: Annotated[float, typer.Option(help="Seconds the task may take.")] = 120.0,
    python: Annotated[
        str, typer.Option(help="The interpreter on the cluster that has raymesh.")
    ] = "python",
) -> None:
    """Submit a team run to a Ray cluster as a job (through the Ray Jobs API).

    An --env that looks like a secret is refused: keys live on the cluster (`raymesh up
    --secrets-file`, or --secrets-file here naming a file there).
    """
    from mesh.ops import job_client, parse_env, submit_team, version_mismatch

    try:
        variables = parse_env(env or [])
        with _err.status("connecting to the Jobs API"):
            client = job_client(address)
        if warning := version_mismatch(client):
            _err.print(f"[yellow]warning:[/yellow] {warning}")
        with _err.status("uploading the working directory and submitting"):
            job_id = submit_team(
                client, team_file, task, working_dir=working_dir, pip=pip or [],
                env=variables, secrets_file=secrets_file, timeout=timeout, python=python,
            )  # fmt: skip
    except MeshError as exc:
        fail(exc)
    _out.print(f"job {job_id} submitted")
    if not follow:
        _out.print(f"  raymesh logs {job_id}    raymesh stop {job_id}")
        return
    _follow(client, job_id)


def _follow(client: Any, job_id: str) -> NoReturn:
    from mesh.ops import follow_job

    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        _out.print(line, markup=False, highlight=False, soft_wrap=True)

    try:
        status, message = follow_job(client, job_id, on_line=show)
    except KeyboardInterrupt:
        _err.print(f"[yellow]stopped following; the job runs on[/yellow] "
                   f"(raymesh stop {job_id})")  # fmt: skip
        raise typer.Exit(130) from None
    except MeshError as exc:
        fail(exc)
    if status == "SUCCEEDED":
        _err.print(f"[green]job {job_id} succeeded[/green]")
        raise typer.Exit(0)
    _err.print(
        f"[red]job {job_id} {status.lower()}[/red]: {message.splitlines()[0] if message else ''}"
    )
    _err.print("last log lines:")
    for line in lines[-20:]:
        _err.print(f"  {line}", markup=False, highlight=False)
    raise typer.Exit(1)


@app.command("jobs")
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
    _out.print(table)


@app.command("logs")
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


@app.command("stop")
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
    _out.print(f"job {job_id} " + ("stopping" if stopped else "had already ended"))


@app.command("status")
def status(
    address: Address = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Show the mesh's agents: role, model, node, health, mailbox, handled, tokens, cost."""
    from mesh.config import MeshConfig
    from mesh.ops import agent_rows, gcs_address

    namespace = namespace or MeshConfig().namespace
    try:
        gcs = gcs_address(address)
        with _err.status(f"reading the registry of {gcs} (namespace {namespace})"):
            rows = agent_rows(gcs, namespace=namespace)
    except MeshError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps({"address": gcs, "namespace": namespace, "agents": rows}, indent=2))
        return
    table = Table(title=f"agents of {gcs}, namespace {namespace}")
    numbers = ("mailbox", "handled", "tokens", "cost $")
    for column in ("agent", "role", "model", "node", "incarnation", "health", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for row in rows:
        cost = None if row["cost_usd"] is None else f"{row['cost_usd']:.4f}"
        if not row["reachable"]:
            health = "[red]unreachable[/red]"
        elif row["healthy"]:
            health = f"[green]ok[/green] ({row['loop_lag_s'] * 1000:.0f} ms lag)"
        else:
            health = f"[red]stuck[/red] ({row['loop_lag_s']:.1f} s lag)"
        table.add_row(row["name"], row["role"] or "", row["model"] or "", row["node"],
                      row["incarnation"][:8], health, _dash(row["mailbox_depth"]),
                      _dash(row["handled"]), _dash(row["tokens"]),
                      _dash(cost))  # fmt: skip
    _out.print(table if rows else f"no agents in namespace {namespace!r} of {gcs}")


@app.command("trace")
def trace(
    trace_id: Annotated[
        str | None,
        typer.Argument(help="The trace id (`raymesh run` prints it).", show_default=False),
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Show the most recent trace.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw spans as JSON.")] = False,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            "-a",
            help="The GCS address (HOST:PORT) of the cluster the mesh runs on. Default: "
            "$RAY_ADDRESS, else the cluster `raymesh up` started, else the traces "
            "`raymesh run` saved.",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="The mesh's Ray namespace.", show_default="raymesh")
    ] = None,
) -> None:
    """Show one conversation as a tree of handled messages with timing bars."""
    from mesh.ops import trace_table

    if (trace_id is None) == (not last):
        _err.print("[red]error:[/red] give a TRACE_ID or --last (not both)")
        raise typer.Exit(2)
    try:
        spans = _trace_spans(trace_id, address, namespace)
    except MeshError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(spans, indent=2))
        return
    _out.print(trace_table(spans))


def _trace_spans(trace_id: str | None, address: str | None, namespace: str | None) -> list[Any]:
    # The running mesh's span store first, then what `raymesh run` saved.
    from mesh.config import MeshConfig
    from mesh.errors import TraceNotFoundError
    from mesh.ops import gcs_address, live_head, saved_trace, trace_spans

    spans: list[Any] = []
    if address or os.environ.get("RAY_ADDRESS") or live_head() is not None:
        gcs = gcs_address(address)
        namespace = namespace or MeshConfig().namespace
        with _err.status(f"reading the spans of {gcs} (namespace {namespace})"):
            spans = trace_spans(gcs, namespace=namespace, trace_id=trace_id)
    spans = spans or saved_trace(trace_id)
    if spans:
        return spans
    if trace_id is None:
        raise TraceNotFoundError(
            "no traces yet", hint="run a team (`raymesh run`), or pass --address of a running mesh"
        )
    raise TraceNotFoundError(
        "no spans are kept for this trace",
        trace_id=trace_id,
        hint="check the id; the span store keeps the newest spans only (`--last` shows the "
        "most recent trace)",
    )


@app.command("deadletters")
def deadletters(
    agent: Annotated[
        str | None, typer.Option(help="Only those recorded by, sent by or sent to this agent.")
    ] = None,
    limit: Annotated[int, typer.Option(help="The most recent this many.")] = 50,
    address: Address = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Show the messages the live agents could not deliver or handle, oldest first."""
    import datetime

    from mesh.config import MeshConfig
    from mesh.ops import dead_letter_rows, gcs_address

    namespace = namespace or MeshConfig().namespace
    try:
        gcs = gcs_address(address)
        with _err.status(f"reading the dead letters of {gcs} (namespace {namespace})"):
            rows = dead_letter_rows(gcs, namespace=namespace, agent=agent, limit=limit)
    except MeshError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"dead letters of {gcs}, namespace {namespace}")
    for column in ("time", "agent", "reason", "kind", "type", "sender", "recipient", "trace",
                   "error"):  # fmt: skip
        table.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    for row in rows:
        at = datetime.datetime.fromtimestamp(row["at"]).strftime("%H:%M:%S.%f")[:-3]
        error = f"{row['error_type']}: {row['error']}"
        table.add_row(at, row["agent"], row["reason"], _dash(row["kind"]), _dash(row["type"]),
                      _dash(row["sender"]), _dash(row["recipient"]),
                      (row["trace_id"] or "-")[:8], error)  # fmt: skip
    _out.print(table if rows else f"no dead letters in namespace {namespace!r} of {gcs}")


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _add_plugin_commands() -> None:
    """Add the commands other packages declare under the ``raymesh.commands`` entry points.

    The benchmark and chaos suites plug in this way, so the runtime never imports them.
    """
    for entry in entry_points(group="raymesh.commands"):
        try:
            command = entry.load()
        except Exception as exc:  # a broken plugin must not take the other commands down
            _err.print(f"[yellow]warning:[/yellow] command {entry.name!r} ({entry.value}) "
                       f"could not be loaded: {escape(str(exc))}")  # fmt: skip
            continue
        app.command(entry.name)(command)


_add_plugin_commands()
