"""Inspecting a running mesh from outside it: ``raymesh status``, ``trace``, ``deadletters``.

``status`` shows the gateways too (``raymesh serve``'s Ray Serve applications).

A command joins the cluster as a short-lived, read-only `Mesh` (it starts no service actor
and no agent), reads through its methods, and leaves; a process already in Ray (a test, a
notebook) reads through its own connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray

from mesh.config import MeshConfig
from mesh.edge import Mesh
from mesh.errors import ClusterError, MeshError

__all__ = ["agent_rows", "inspect_mesh", "status_rows"]

T = TypeVar("T")


def inspect_mesh(
    address: str,
    *,
    namespace: str,
    read: Callable[[Mesh], Awaitable[T]],
    timeout: float | None = 10.0,
) -> T:
    """Join the cluster at `address`, return ``read(mesh)`` for the namespace's mesh, leave.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ConfigError: Ray refused to join (e.g. another Ray version).
        MeshNotRunningError: No mesh started in the namespace.
        ClusterError: The mesh did not answer within `timeout` seconds (None: no limit).
    """

    async def session() -> T:
        mesh = Mesh.connect(address, config=MeshConfig(namespace=namespace), read_only=True,
                            log_to_driver=False, logging_level=logging.WARNING)  # fmt: skip
        try:
            async with asyncio.timeout(timeout):
                return await read(mesh)
        except TimeoutError:
            raise ClusterError(
                f"the mesh at {address} (namespace {namespace}) did not answer within {timeout} s",
                hint="`ray status` on the head shows whether the cluster is overloaded",
            ) from None
        finally:
            await mesh.shutdown()

    return asyncio.run(session())


async def agent_rows(mesh: Mesh, *, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Return a row per live agent: the registry's entry and the host's health and counters.

    An agent that does not answer within `timeout` seconds is shown as unreachable.
    """
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}  # type: ignore[no-untyped-call]
    rows = []
    for info in await mesh.agents():
        row: dict[str, Any] = {
            "name": info.name,
            "role": info.role,
            "model": info.model,
            "node": nodes.get(info.node_id, info.node_id[:12]),
            "incarnation": info.incarnation,
            "healthy": info.healthy,
            "loop_lag_s": info.loop_lag_s,
            "mailbox_depth": None,
            "handled": None,
            "tokens": None,
            "cost_usd": None,
            "reachable": True,
        }
        try:
            async with asyncio.timeout(timeout):
                health = await (await mesh.actor(info.name)).health.remote()
                stats = await mesh.stats(info.name)
        except (MeshError, ray.exceptions.RayError, TimeoutError):
            row["reachable"] = False
        else:
            row.update(
                healthy=health["healthy"],
                loop_lag_s=health["loop_lag_s"],
                mailbox_depth=health["mailbox_depth"],
                handled=stats.handled,
                received=stats.received,
                failed=stats.failed,
                tokens=sum(u.input_tokens + u.output_tokens for u in stats.models.values()),
                cost_usd=sum(u.cost_usd for u in stats.models.values()),
            )
        rows.append(row)
    return rows


async def status_rows(mesh: Mesh) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return what ``raymesh status`` shows: the agents' rows and the gateways' rows."""
    from mesh.gateway import gateway_rows  # Ray Serve is imported only when asked

    return await agent_rows(mesh), await gateway_rows()
