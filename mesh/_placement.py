"""Where the mesh service actors live: one per namespace, on the head node.

The registry, the span store, the type catalog and the approval desk are named, detached
actors started by whoever needs them first; they outlive the driver that started them.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def on_head_node() -> Any:
    """Return a scheduling strategy for the head node, which lives as long as the cluster."""
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            return NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
    return "DEFAULT"


def service_options(name: str, *, namespace: str) -> dict[str, Any]:
    """Return the Ray options of a mesh service actor (registry, span store, type catalog).

    One per namespace, found by name, started by whoever needs it first; it outlives the
    driver that started it and restarts on the head node, where it lives.
    """
    return {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "num_cpus": 0,
        "max_restarts": -1,
        "max_concurrency": 1,
        "scheduling_strategy": on_head_node(),
    }
