"""``raymesh status``, ``trace`` and ``deadletters``: a running mesh seen from outside.

Each joins the cluster through `Mesh.connect` (``mesh.ops.inspect_mesh``) and reads what
the mesh's own methods return; ``trace`` falls back to the traces ``raymesh run`` saved.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from mesh.cli._console import dash, err, fail, out
from mesh.cli._options import Address, AsJson, Namespace
from mesh.errors import MeshError

if TYPE_CHECKING:
    from mesh.edge import Mesh

__all__ = ["register"]

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add ``status``, ``trace`` and ``deadletters`` to the ``raymesh`` app."""
    app.command("status")(status)
    app.command("trace")(trace)
    app.command("deadletters")(deadletters)


def _read(
    address: str | None,
    namespace: str | None,
    what: str,
    read: Callable[[Mesh], Awaitable[T]],
    timeout: float | None,
) -> tuple[str, str, T | None]:
    """Return the GCS address, the namespace and what `read` found of that mesh.

    A namespace where no mesh runs has nothing to read: None, with a note (the look starts
    nothing there).
    """
    from mesh.config import MeshConfig
    from mesh.errors import MeshNotRunningError
    from mesh.ops import gcs_address, inspect_mesh

    namespace = namespace or MeshConfig().namespace
    gcs = gcs_address(address)
    with err.status(f"reading {what} of {gcs} (namespace {namespace})"):
        try:
            found = inspect_mesh(gcs, namespace=namespace, read=read, timeout=timeout)
        except MeshNotRunningError:
            err.print(f"no mesh runs in namespace {namespace!r} of {gcs}")
            return gcs, namespace, None
    return gcs, namespace, found


def status(
    address: Address = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Show the mesh's agents (role, model, node, health, mailbox, handled, tokens, cost)
    and its gateways (`raymesh serve`: application, route, replicas, status)."""
    from mesh.ops import status_rows

    try:
        # No deadline in all: each agent has its own, after which it shows unreachable.
        gcs, namespace, found = _read(address, namespace, "the registry", status_rows, None)
    except MeshError as exc:
        fail(exc)
    rows, gateways = found or ([], [])
    if as_json:
        shown = {"address": gcs, "namespace": namespace, "agents": rows, "gateways": gateways}
        typer.echo(json.dumps(shown, indent=2))
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
                      row["incarnation"][:8], health, dash(row["mailbox_depth"]),
                      dash(row["handled"]), dash(row["tokens"]),
                      dash(cost))  # fmt: skip
    out.print(table if rows else f"no agents in namespace {namespace!r} of {gcs}")
    if gateways:
        out.print(_gateways_table(gateways))


def _gateways_table(gateways: list[dict[str, Any]]) -> Table:
    table = Table(title="gateways (raymesh serve)")
    for column in ("application", "route", "url", "models", "replicas", "status"):
        table.add_column(column, justify="right" if column == "replicas" else "left")
    for row in gateways:
        cells = (row["application"], dash(row["route"]), dash(row["url"]),
                 ", ".join(row["models"]), str(row["replicas"]), row["status"])  # fmt: skip
        table.add_row(*(escape(cell) for cell in cells))
    return table


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
        err.print("[red]error:[/red] give a TRACE_ID or --last (not both)")
        raise typer.Exit(2)
    try:
        spans = _trace_spans(trace_id, address, namespace)
    except MeshError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(spans, indent=2))
        return
    out.print(trace_table(spans))


def _trace_spans(trace_id: str | None, address: str | None, namespace: str | None) -> list[Any]:
    # The running mesh's span store first, then what `raymesh run` saved.
    from mesh.errors import TraceNotFoundError
    from mesh.ops import live_head, saved_trace

    spans: list[Any] = []
    if address or os.environ.get("RAY_ADDRESS") or live_head() is not None:
        _, _, kept = _read(address, namespace, "the spans", lambda m: m.trace(trace_id), 10.0)
        spans = kept or []
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

    try:
        gcs, namespace, letters = _read(
            address,
            namespace,
            "the dead letters",
            lambda m: m.dead_letters(agent, limit=limit),
            5.0,
        )
        rows = [letter.model_dump() for letter in letters or []]
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
        table.add_row(at, row["agent"], row["reason"], dash(row["kind"]), dash(row["type"]),
                      dash(row["sender"]), dash(row["recipient"]),
                      (row["trace_id"] or "-")[:8], error)  # fmt: skip
    out.print(table if rows else f"no dead letters in namespace {namespace!r} of {gcs}")
