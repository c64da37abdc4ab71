"""Discovery: a named, detached registry actor and the client hosts use to reach it.

The registry is the control plane only; no message passes through it. Agents register
under a lease they renew; an entry whose lease lapsed is gone. A restarted registry
starts empty and is rebuilt as hosts find their renewals refused and register again,
within one lease period; for that period it says so (`rebuilding_s`), so that a lookup of
a name it lacks waits for it rather than calling a live agent unknown. Refusals are
returned as data, not raised, so that no Ray exception wrapper ever reaches user code.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import ray
from ray.util.annotations import RayDeprecationWarning

from mesh._placement import service_options
from mesh.agent import AgentInfo
from mesh.datapath import REGISTRY_NAME, RegistryClient
from mesh.errors import NameTakenError


class _Entry:
    __slots__ = ("expires", "handle", "info")

    def __init__(self, info: AgentInfo, handle: Any, expires: float) -> None:
        self.info = info
        self.handle = handle
        self.expires = expires


class Registry:
    """The registry actor's state and methods (run as a Ray actor by `RegistryClient`)."""

    def __init__(self, lease_s: float) -> None:
        self._lease_s = lease_s
        self._entries: dict[str, _Entry] = {}
        with warnings.catch_warnings():
            # Ray's property reads its own deprecated `actor_id`, and the warning it
            # raises would reach the user's console as if raymesh used that API.
            warnings.simplefilter("ignore", RayDeprecationWarning)
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._rebuilt_by = time.monotonic() + lease_s if restarted else 0.0

    def register(self, info: dict[str, Any], handle: Any) -> dict[str, Any] | None:
        """Add an entry; return a `NameTakenError` as data if a live agent has the name."""
        entry = AgentInfo.model_validate(info)
        current = self._live(entry.name)
        if current is not None and current.info.incarnation != entry.incarnation:
            return NameTakenError(
                f"agent name {entry.name!r} is taken by a live agent "
                f"(incarnation {current.info.incarnation}, node {current.info.node_id[:12]})",
                agent=entry.name,
                hint="pick another name, or stop the running agent first",
            ).to_wire()
        self._entries[entry.name] = _Entry(entry, handle, time.monotonic() + self._lease_s)
        return None

    def renew(self, name: str, incarnation: str, healthy: bool, loop_lag_s: float) -> bool:
        """Extend a lease and record health; False tells the host to register again."""
        entry = self._live(name)
        if entry is None or entry.info.incarnation != incarnation:
            return False
        entry.expires = time.monotonic() + self._lease_s
        if (healthy, loop_lag_s) != (entry.info.healthy, entry.info.loop_lag_s):
            entry.info = entry.info.model_copy(
                update={"healthy": healthy, "loop_lag_s": loop_lag_s}
            )
        return True

    def unregister(self, name: str, incarnation: str) -> None:
        """Remove an entry if it still belongs to that incarnation."""
        entry = self._entries.get(name)
        if entry is not None and entry.info.incarnation == incarnation:
            del self._entries[name]

    def lookup(self, name: str, unless: str | None = None) -> tuple[dict[str, Any], Any] | None:
        """Return the live entry for `name` and its host handle, or None.

        The handle is left out (None) when the entry is incarnation `unless`: one the
        caller saw die, which it will not call. A handle costs a deserialization at the
        caller, and a caller waiting for a successor may look up many times.
        """
        entry = self._live(name)
        if entry is None:
            return None
        return entry.info.model_dump(), None if entry.info.incarnation == unless else entry.handle

    def rebuilding_s(self) -> float:
        """Seconds left of a restarted registry's rebuild: 0 if it was never restarted, or
        once a lease period has passed since, when every live host has registered again."""
        return max(self._rebuilt_by - time.monotonic(), 0.0)

    def find(
        self, role: str | None = None, capability: str | None = None, topic: str | None = None
    ) -> list[tuple[dict[str, Any], Any]]:
        """Return the live entries matching a role, a capability and/or a topic, by name."""
        self._expire()
        return [
            (entry.info.model_dump(), entry.handle)
            for name, entry in sorted(self._entries.items())
            if (role is None or entry.info.role == role)
            and (capability is None or capability in entry.info.capabilities)
            and (topic is None or topic in entry.info.topics)
        ]

    def _live(self, name: str) -> _Entry | None:
        entry = self._entries.get(name)
        if entry is not None and entry.expires < time.monotonic():
            del self._entries[name]
            return None
        return entry

    def _expire(self) -> None:
        now = time.monotonic()
        for name in [n for n, e in self._entries.items() if e.expires < now]:
            del self._entries[name]


def start_registry(*, namespace: str, lease_s: float) -> RegistryClient:
    """Return a client for the namespace's registry, starting it on first use."""
    actor = ray.remote(Registry).options(**service_options(REGISTRY_NAME, namespace=namespace))
    return RegistryClient(actor.remote(lease_s))
