"""``raymesh approvals`` / ``approve`` / ``reject``: decide checkpoints from another terminal.

Each command joins the cluster the conversation runs on (by its GCS address, as
``raymesh status`` does) and talks to the namespace's approval desk actor.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from mesh.cli._console import err, fail, out
from mesh.cli._options import Address, Namespace
from mesh.errors import MeshError

__all__ = ["register"]

T = TypeVar("T")
#: Who decided, as the decision records it.
_CLI = "raymesh-cli"


def register(app: typer.Typer) -> None:
    """Add the approval commands to the ``raymesh`` app."""
    app.command("approvals")(approvals)
    app.command("approve")(approve)
    app.command("reject")(reject)


def _at_desk(
    address: str | None, namespace: str | None, use: Callable[[Any], Coroutine[Any, Any, T]]
) -> T:
    """Join the cluster, run ``use(gate)`` on the namespace's approval desk, leave."""
    import ray

    from mesh.config import MeshConfig
    from mesh.control import APPROVALS_NAME, RayApprovalGate
    from mesh.edge import join_cluster
    from mesh.ops import gcs_address

    namespace = namespace or MeshConfig().namespace
    try:
        join_cluster(gcs_address(address), namespace=namespace, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
    except MeshError as exc:
        fail(exc)
    try:
        try:
            handle = ray.get_actor(APPROVALS_NAME, namespace=namespace)
        except ValueError:
            err.print(f"no approval desk in namespace {namespace!r}: nothing ever waited here")
            raise typer.Exit(1) from None
        try:
            return asyncio.run(use(RayApprovalGate(handle)))
        except MeshError as exc:
            fail(exc)
    finally:
        ray.shutdown()


def approvals(
    address: Address = None,
    namespace: Namespace = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the approval checkpoints waiting for a person."""

    async def pending(gate: Any) -> list[Any]:
        points: list[Any] = await gate.pending()
        return points

    points = _at_desk(address, namespace, pending)
    if as_json:
        typer.echo(json.dumps([p.model_dump() for p in points], indent=2))
        return
    if not points:
        out.print("no checkpoint is waiting")
        return
    table = Table(title="checkpoints waiting for approval")
    for column in ("id", "level", "trace", "task", "proposal"):
        table.add_column(column, overflow="fold")
    for point in points:
        table.add_row(point.id, str(point.level), point.trace_id or "",
                      str(point.data.get("task", "")), point.proposal)  # fmt: skip
    out.print(table)
    out.print("decide: raymesh approve ID [--edit TEXT]   raymesh reject ID [--reason TEXT]")


def approve(
    checkpoint_id: Annotated[str, typer.Argument(help="The checkpoint id.", show_default=False)],
    edit: Annotated[
        str | None, typer.Option(help="Approve this text instead of the proposal.")
    ] = None,
    address: Address = None,
    namespace: Namespace = None,
) -> None:
    """Approve a waiting checkpoint (optionally edited); its conversation goes on."""

    async def decide(gate: Any) -> None:
        await gate.approve(checkpoint_id, edit=edit, by=_CLI)

    _at_desk(address, namespace, decide)
    out.print(f"checkpoint {checkpoint_id} " + ("approved" if edit is None else "edited"))


def reject(
    checkpoint_id: Annotated[str, typer.Argument(help="The checkpoint id.", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why; the conversation's error says it.")] = "",
    address: Address = None,
    namespace: Namespace = None,
) -> None:
    """Reject a waiting checkpoint; its conversation fails with ApprovalRejectedError."""

    async def decide(gate: Any) -> None:
        await gate.reject(checkpoint_id, reason=reason, by=_CLI)

    _at_desk(address, namespace, decide)
    out.print(f"checkpoint {checkpoint_id} rejected")
