"""Clusters: a local Ray head that ``raymesh up`` starts and ``down`` stops, and Ray jobs.

``raymesh up`` runs ``ray start --head`` with its own temp dir under the raymesh home
(``$RAYMESH_HOME``, default ``~/.raymesh``), on free ports, with the dashboard (and so the
Jobs API) bound to 127.0.0.1, and records what it started in ``cluster.json`` there.
``down`` stops those processes and nothing else: ``ray stop`` would stop every Ray on the
machine. Team runs go to a cluster as Ray jobs (``submit``): the working directory and the
team file travel in the job's runtime_env, and the entrypoint is ``raymesh run`` joining
the cluster the job runs in.

Errors::

    MeshError
    └── ClusterError                 a head could not start or stop, a job could not be sent
        └── ClusterUnreachableError (+ConnectionError)  nothing answers at the address
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any, cast

from mesh.edge import prepare_driver
from mesh.errors import ClusterError


def agent_rows(address: str, *, namespace: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return a row per live agent of the namespace.

    Each row holds the registry entry (name, role, model, node, incarnation, health)
    and the host's counters (mailbox depth, messages handled, model tokens and cost).
    The registry is only read: a namespace without one has no agents, and none is created.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    import ray

    with _joined(address, namespace):
        entries = _registry_entries(namespace, timeout)
        nodes = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}  # type: ignore[no-untyped-call]
        return [_agent_row(info, handle, nodes, timeout) for info, handle in entries]


def trace_spans(
    address: str, *, namespace: str, trace_id: str | None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return one trace's spans from the mesh's span store.

    Args:
        trace_id: The conversation; the most recent one when None.

    Returns the spans in start order; none when the trace (or the span store) is unknown.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    import ray

    from mesh.observability import SPAN_STORE_NAME

    with _joined(address, namespace):
        try:
            store = ray.get_actor(SPAN_STORE_NAME, namespace=namespace)
        except ValueError:
            return []
        if trace_id is None:
            last = cast("str | None", ray.get(store.last_trace.remote(), timeout=timeout))
            if last is None:
                return []
            trace_id = last
        spans: list[dict[str, Any]] = ray.get(store.trace.remote(trace_id), timeout=timeout)
        return spans


@contextlib.contextmanager
def _joined(address: str, namespace: str) -> Iterator[None]:
    # A short-lived driver that only reads the mesh's actors; a process already in Ray
    # (a test, a notebook) reads through its own connection.
    prepare_driver(address)
    import ray

    owns = not ray.is_initialized()
    if owns:
        try:
            ray.init(
                address=address, namespace=namespace, log_to_driver=False,
                logging_level=logging.WARNING,
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"cannot join the Ray cluster at {address}: {exc}",
                hint="`raymesh version` and the dashboard show both Ray versions",
            ) from exc
    try:
        yield
    finally:
        if owns:
            ray.shutdown()


def dead_letter_rows(
    address: str, *, namespace: str, agent: str | None, limit: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return the live agents' recent dead letters.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    from mesh.observability import collect_dead_letters

    with _joined(address, namespace):
        hosts = [handle for _, handle in _registry_entries(namespace, timeout)]

        async def collect() -> list[dict[str, Any]]:
            async with asyncio.timeout(timeout):
                letters = await collect_dead_letters(hosts, agent=agent, limit=limit)
            return [letter.model_dump() for letter in letters]

        return asyncio.run(collect())


def _registry_entries(namespace: str, timeout: float) -> list[tuple[dict[str, Any], Any]]:
    # The registry is only read: a namespace without one has no agents, and none is made.
    import ray

    from mesh.datapath import REGISTRY_NAME

    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=namespace)
    except ValueError:
        return []
    entries: list[tuple[dict[str, Any], Any]] = ray.get(
        registry.find.remote(None, None), timeout=timeout
    )
    return entries


def _agent_row(
    info: dict[str, Any], handle: Any, nodes: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    import ray

    row: dict[str, Any] = {
        "name": info["name"],
        "role": info.get("role"),
        "model": info.get("model"),
        "node": nodes.get(info["node_id"], info["node_id"][:12]),
        "incarnation": info["incarnation"],
        "healthy": info.get("healthy", True),
        "loop_lag_s": info.get("loop_lag_s", 0.0),
        "mailbox_depth": None,
        "handled": None,
        "tokens": None,
        "cost_usd": None,
        "reachable": True,
    }
    try:
        health = ray.get(handle.health.remote(), timeout=timeout)
        stats = ray.get(handle.stats.remote(), timeout=timeout)
    except (ray.exceptions.RayError, TimeoutError):
        row["reachable"] = False
        return row
    row.update(
        healthy=health["healthy"],
        loop_lag_s=health["loop_lag_s"],
        mailbox_depth=health["mailbox_depth"],
        handled=stats.get("handled"),
        received=stats.get("received"),
        failed=stats.get("failed"),
        tokens=sum(u.input_tokens + u.output_tokens for u in stats["models"].values()),
        cost_usd=sum(u.cost_usd for u in stats["models"].values()),
    )
    return row
