"""``raymesh up`` and ``down``: the local Ray head that ``up`` starts and ``down`` stops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mesh.cli._console import err, fail, out
from mesh.errors import MeshError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``down`` to the ``raymesh`` app."""
    app.command("up")(up)
    app.command("down")(down)


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
    tls: Annotated[
        bool,
        typer.Option(
            help="Run Ray's gRPC with mutual TLS; the CA and node certificate go to "
            "$RAYMESH_HOME/tls (or $RAYMESH_TLS_DIR).",
        ),
    ] = False,
) -> None:
    """Start a local Ray head with its dashboard and Jobs API on 127.0.0.1.

    What was started is recorded under $RAYMESH_HOME (default ~/.raymesh), so that
    `raymesh down` stops exactly that and nothing else. Keys for the cluster's jobs
    come from --secrets-file, never from `submit --env`. With --tls, the commands that
    join it (status, trace, approvals, Mesh.connect) find the certificates there; the
    dashboard and Jobs API stay plain HTTP on 127.0.0.1.
    """
    from mesh.ops import live_head, start_head

    try:
        current = live_head()
        if current is not None:
            out.print(f"[yellow]a cluster is already up[/yellow] at {current.address}, "
                       f"dashboard {current.dashboard_url}")  # fmt: skip
            if tls and not current.tls:
                err.print("[yellow]it runs without TLS[/yellow]: `raymesh down`, then "
                          "`raymesh up --tls`")  # fmt: skip
            _print_next_steps(current)
            return
        with err.status("starting a Ray head (ray start --head)"):
            state = start_head(port=port, dashboard_port=dashboard_port,
                                       num_cpus=num_cpus, host=host, dev=dev,
                                       secrets_file=secrets_file, tls=tls)  # fmt: skip
    except MeshError as exc:
        fail(exc)
    out.print(f"[green]cluster up[/green] (Ray {state.ray_version}, "
               f"{len(state.pids)} processes, temp dir {state.temp_dir})")  # fmt: skip
    out.print(f"  address:   {state.address}")
    out.print(f"  dashboard: {state.dashboard_url}")
    for socket in state.exposed:  # a port Ray bound beyond loopback after all
        err.print(f"[yellow]warning:[/yellow] {socket}: reachable from other machines")
    if state.tls:
        out.print(f"  TLS:       on, CA {state.tls_ca_cert} (the dashboard stays plain HTTP)")
    _print_next_steps(state)
    if block:
        _block_until_interrupted(state)


def _print_next_steps(state: Any) -> None:
    out.print("next:")
    out.print(f"  raymesh submit --address {state.dashboard_url} TEAM.yaml --task '...' --follow")
    out.print(f"  raymesh status --address {state.address}")
    out.print("  raymesh jobs")
    out.print("  raymesh down")


def _block_until_interrupted(state: Any) -> None:
    import time

    from mesh.ops import live_head, stop_head

    out.print("running in the foreground; Ctrl-C stops the cluster")
    try:
        while live_head() is not None:
            time.sleep(1.0)
        err.print("[yellow]the cluster stopped[/yellow]")
    except KeyboardInterrupt:
        with err.status("stopping the cluster"):
            stop_head(state)
        out.print("cluster down")


def down() -> None:
    """Stop the cluster `raymesh up` started: its processes only (never `ray stop`)."""
    from mesh.ops import live_head, stop_head

    try:
        state = live_head()
        if state is None:
            out.print("no cluster is up (nothing to stop)")
            return
        with err.status(f"stopping the cluster at {state.address}"):
            stopped = stop_head(state)
    except MeshError as exc:
        fail(exc)
    out.print(f"cluster down: stopped {len(stopped)} processes ({state.address})")
