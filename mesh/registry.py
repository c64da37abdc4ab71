"""Discovery: a named, detached registry actor and the client hosts use to reach it.

The registry is the control plane only; no message passes through it. Agents register
under a lease they renew; an entry whose lease lapsed is gone. A restarted registry
starts empty and is rebuilt as hosts find their renewals refused and register again,
within one lease period. Refusals are returned as data, not raised, so that no Ray
exception wrapper ever reaches user code.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict
from ray.exceptions import ActorUnavailableError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mesh.errors import MeshError, NameTakenError, RegistryUnavailableError

__all__ = [
    "REGISTRY_NAME",
    "AgentInfo",
    "Registry",
    "RegistryClient",
    "on_head_node",
    "service_options",
]

REGISTRY_NAME = "raymesh.registry"
_RETRY_DELAYS_S = (0.1, 0.3, 0.6, 1.0)


class AgentInfo(BaseModel):
    """A registry entry: who an agent is and where it runs."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: str | None = None
    capabilities: tuple[str, ...] = ()
    model: str | None = None
    topics: tuple[str, ...] = ()
    node_id: str
    incarnation: str
    pid: int
    started_at: float
    healthy: bool = True
    loop_lag_s: float = 0.0


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


class RegistryClient:
    """Async access to the registry actor of a namespace, creating it if needed."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @classmethod
    def get_or_create(cls, *, namespace: str, lease_s: float) -> RegistryClient:
        """Return a client for the namespace's registry, starting it on first use."""
        actor = ray.remote(Registry).options(**service_options(REGISTRY_NAME, namespace=namespace))
        return cls(actor.remote(lease_s))

    @classmethod
    def existing(cls, *, namespace: str) -> RegistryClient:
        """Return a client for a registry that must already exist (inside hosts)."""
        return cls(ray.get_actor(REGISTRY_NAME, namespace=namespace))

    async def _call(self, method: str, *args: Any) -> Any:
        # A restarting registry answers again within moments: retry briefly first.
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                return await getattr(self.handle, method).remote(*args)
            except ActorUnavailableError as exc:
                if delay is None:
                    raise self._unavailable(method, exc) from exc
                await asyncio.sleep(delay)
            except RayError as exc:
                raise self._unavailable(method, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _unavailable(method: str, exc: RayError) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"the registry did not answer {method}: {type(exc).__name__}",
            hint="it restarts by itself; retry shortly, or check `ray status`",
        )

    async def register(self, info: AgentInfo, handle: Any) -> None:
        """Register an agent.

        Raises:
            NameTakenError: A live agent already has the name.
            RegistryUnavailableError: The registry did not answer.
        """
        refusal = await self._call("register", info.model_dump(), handle)
        if refusal is not None:
            raise MeshError.from_wire(refusal)

    async def renew(
        self, name: str, incarnation: str, *, healthy: bool = True, loop_lag_s: float = 0.0
    ) -> bool:
        """Extend an agent's lease and report its health; False means register again."""
        return bool(await self._call("renew", name, incarnation, healthy, loop_lag_s))

    async def unregister(self, name: str, incarnation: str) -> None:
        """Remove an agent's entry."""
        await self._call("unregister", name, incarnation)

    async def evict_if_dead(self, name: str, *, ping_s: float = 2.0) -> None:
        """Drop the entry for `name` if its agent no longer answers.

        A killed agent keeps its name until its lease lapses; a successor should not
        have to wait for that, but a live holder must keep its name.
        """
        found = await self.lookup(name)
        if found is None:
            return
        info, handle = found
        try:
            await asyncio.wait_for(handle.ping.remote(), ping_s)
        except (TimeoutError, RayError):
            await self.unregister(name, info.incarnation)

    async def lookup(self, name: str, *, unless: str | None = None) -> tuple[AgentInfo, Any] | None:
        """Return the live entry for `name` and its host handle, or None.

        The handle is None if the entry is incarnation `unless` (one known to be dead).
        """
        found = await self._call("lookup", name, unless)
        return None if found is None else (AgentInfo.model_validate(found[0]), found[1])

    async def find(
        self, *, role: str | None = None, capability: str | None = None, topic: str | None = None
    ) -> list[tuple[AgentInfo, Any]]:
        """Return live entries by role, capability and/or subscribed topic."""
        rows = await self._call("find", role, capability, topic)
        return [(AgentInfo.model_validate(info), handle) for info, handle in rows]
