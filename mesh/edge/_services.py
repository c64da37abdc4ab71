"""The namespace's service actors as the edge reaches them: started on first use, or only
found, for a read-only join that must leave the cluster as it found it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from mesh.config import MeshConfig
from mesh.control import start_registry, type_catalog
from mesh.datapath import REGISTRY_NAME, TYPE_CATALOG_NAME, RegistryClient
from mesh.errors import MeshNotRunningError
from mesh.observability import SPAN_STORE_NAME, span_store

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    """The registry, span store and type catalog of one namespace."""

    registry: RegistryClient
    spans: Any
    catalog: Any

    @classmethod
    def start(cls, config: MeshConfig) -> Services:
        """Return the namespace's services, starting any that does not run yet."""
        namespace = config.namespace
        return cls(
            registry=start_registry(namespace=namespace, lease_s=config.lease_s),
            spans=span_store(namespace=namespace, capacity=config.max_spans),
            catalog=type_catalog(namespace=namespace),
        )

    @classmethod
    def find(cls, config: MeshConfig) -> Services:
        """Return the namespace's running services, starting none.

        Raises:
            MeshNotRunningError: One of them does not run: no mesh started in the namespace.
        """
        return cls(
            registry=RegistryClient(_find(REGISTRY_NAME, config.namespace)),
            spans=_find(SPAN_STORE_NAME, config.namespace),
            catalog=_find(TYPE_CATALOG_NAME, config.namespace),
        )


def _find(name: str, namespace: str) -> Any:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:  # Ray's answer for "no such named actor"
        raise MeshNotRunningError(
            f"no mesh runs in namespace {namespace!r}: its {name} actor was not found",
            hint="start one (`raymesh run`, `raymesh submit`), or pass the namespace it runs "
            "in (--namespace)",
        ) from None
