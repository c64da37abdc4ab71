"""The type catalog: message classes that only a script defines, kept for the whole mesh.

A class defined in a script's ``__main__`` (or inside a function) cannot be imported by
the other processes of the mesh: Ray ships it by value with the agent class that names
it, and nowhere else. A reply, a forward or a tell of such a class would then reach a
participant that has never seen it. Whoever first sends or spawns with such a class
publishes it here, pickled by value; a participant that meets its tag looks it up once
(see `mesh.datapath._typeshare`). Like the span store, the catalog is off the message path: only
a class's first use and a tag's first miss reach it.
"""

from __future__ import annotations

from typing import Any

import ray

from mesh._placement import service_options
from mesh.datapath import TYPE_CATALOG_NAME

__all__ = ["TypeCatalog", "type_catalog"]

#: Classes kept; beyond it the least recently published is forgotten.
_CAPACITY = 4096


class TypeCatalog:
    """The catalog actor's state and methods: pickled classes by tag."""

    def __init__(self, capacity: int = _CAPACITY) -> None:
        self._capacity = capacity
        self._classes: dict[str, bytes] = {}

    def publish(self, tag: str, blob: bytes) -> None:
        """Keep `blob` as the class for `tag`.

        The latest publication wins: a script run again against a long-lived cluster
        brings its class's current shape.
        """
        self._classes.pop(tag, None)
        self._classes[tag] = blob
        if len(self._classes) > self._capacity:
            del self._classes[next(iter(self._classes))]

    def fetch(self, tag: str) -> bytes | None:
        """Return the pickled class for `tag`, or None if nobody published one."""
        return self._classes.get(tag)


def type_catalog(*, namespace: str) -> Any:
    """Return the namespace's type catalog actor, starting it on the head node if needed."""
    options = service_options(TYPE_CATALOG_NAME, namespace=namespace)
    return ray.remote(TypeCatalog).options(**options).remote()
