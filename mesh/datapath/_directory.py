"""The peer directory: the data path's client of the registry actor.

Hosts and the edge register, renew and look up agents here; the registry actor itself
(``mesh.control``) is the control plane and never sees a message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayError

from mesh.agent import AgentInfo
from mesh.errors import MeshError, RegistryUnavailableError

REGISTRY_NAME = "raymesh.registry"


_RETRY_DELAYS_S = (0.1, 0.3, 0.6, 1.0)
#: How often a lookup asks again for a name a restarted registry may not have back yet.
_REBUILD_POLL_S = 0.1


class RegistryClient:
    """Async access to the registry actor of a namespace (``mesh.control`` starts it)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

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

        The handle is None if the entry is incarnation `unless` (one known to be dead). A
        name a restarted registry lacks while it is rebuilt may be a live agent that has
        not registered again yet: the lookup waits for it until the rebuild is over.
        """
        while True:
            found = await self._call("lookup", name, unless)
            if found is not None:
                return AgentInfo.model_validate(found[0]), found[1]
            rebuilding = await self._call("rebuilding_s")
            if not rebuilding:
                return None
            await asyncio.sleep(min(rebuilding, _REBUILD_POLL_S))

    async def find(
        self, *, role: str | None = None, capability: str | None = None, topic: str | None = None
    ) -> list[tuple[AgentInfo, Any]]:
        """Return live entries by role, capability and/or subscribed topic."""
        rows = await self._call("find", role, capability, topic)
        return [(AgentInfo.model_validate(info), handle) for info, handle in rows]
