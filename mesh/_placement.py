"""Where the mesh service actors live: one per namespace, on the head node.

The registry, the span store, the type catalog and the approval desk are named, detached
actors started by whoever needs them first; they outlive the driver that started them.
"""

from __future__ import annotations

from typing import Any

from mesh._compat import on_head_node

__all__ = ["on_head_node", "service_options"]


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
