"""The registry: leases, refusal of taken names, and recovery after a registry restart."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import ray
from _agents import Echo, Ping, Pong
from conftest import Spawn
from ray.exceptions import RayError

from mesh import AgentInfo, Mesh, NameTakenError
from mesh.control._registry import Registry
from mesh.datapath import REGISTRY_NAME, RegistryClient

pytestmark = pytest.mark.ray


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


async def _listed(registry: Any) -> set[str] | None:
    """The names a registry actor lists, or None while it does not answer.

    Asked directly, without the client, which would wait through a restart.
    """
    try:
        rows = await asyncio.wait_for(registry.find.remote(None, None, None), 1.0)
    except (TimeoutError, RayError):
        return None
    return {row[0]["name"] for row in rows}


def _info(name: str) -> AgentInfo:
    return AgentInfo(name=name, node_id="n" * 56, incarnation=uuid.uuid4().hex[:16], pid=1,
                     started_at=time.time())  # fmt: skip


@pytest.fixture
async def registry(mesh: Mesh) -> RegistryClient:
    # A private registry with a short lease, so that the session's is not disturbed.
    return RegistryClient(ray.remote(Registry).options(num_cpus=0).remote(0.5))


async def test_starting_the_registry_raises_no_warning(mesh: Mesh) -> None:
    # Ray's own `was_current_actor_reconstructed` once warned of a deprecated API at
    # every start, printed on the user's console in the registry's name. The class is
    # local, so pickled by value: the test modules are not on the workers' path.
    class WarningsKept(Registry):
        def __init__(self, lease_s: float) -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                super().__init__(lease_s)
            self.caught = [f"{w.category.__name__}: {w.message}" for w in caught]

        def warnings_raised(self) -> list[str]:
            return self.caught

    actor = ray.remote(WarningsKept).options(num_cpus=0).remote(1.0)
    try:
        assert await actor.warnings_raised.remote() == []
    finally:
        ray.kill(actor)


async def test_an_entry_whose_lease_is_not_renewed_drops_out(registry: RegistryClient) -> None:
    info = _info("transient")
    await registry.register(info, None)
    assert (await registry.lookup("transient")) is not None

    async def gone() -> bool:
        return await registry.lookup("transient") is None

    await _eventually(gone, within=5)
    assert await registry.find() == []
    assert await registry.renew("transient", info.incarnation) is False


async def test_renewed_lease_keeps_the_entry(registry: RegistryClient) -> None:
    info = _info("steady")
    await registry.register(info, None)
    for _ in range(8):  # 1.6 s, three times the lease
        assert await registry.renew("steady", info.incarnation)
        await asyncio.sleep(0.2)
    assert await registry.lookup("steady") is not None


async def test_a_live_name_is_refused_and_a_lapsed_one_is_free(registry: RegistryClient) -> None:
    first, second = _info("twin"), _info("twin")
    await registry.register(first, None)
    with pytest.raises(NameTakenError, match="'twin' is taken"):
        await registry.register(second, None)

    async def lapsed() -> bool:
        return await registry.lookup("twin") is None

    await _eventually(lapsed, within=5)
    await registry.register(second, None)
    found = await registry.lookup("twin")
    assert found is not None
    assert found[0].incarnation == second.incarnation


async def test_unregister_only_removes_its_own_incarnation(registry: RegistryClient) -> None:
    info = _info("owner")
    await registry.register(info, None)
    await registry.unregister("owner", "someone-else")
    assert await registry.lookup("owner") is not None
    await registry.unregister("owner", info.incarnation)
    assert await registry.lookup("owner") is None


async def test_a_restarted_registry_is_rebuilt_and_direct_traffic_never_stops(
    mesh: Mesh, spawn: Spawn
) -> None:
    front = await spawn(Echo, "front")
    back = await spawn(Echo, "back")
    assert await mesh.ask(front.name, Ping(text="warm"), expect=Pong)
    registry = ray.get_actor(REGISTRY_NAME, namespace=mesh.config.namespace)
    ray.kill(registry, no_restart=False)  # Ray restarts it, empty

    # Links already open keep working while the registry is away.
    assert await mesh.ask(front.name, Ping(text="during"), expect=Pong) == Pong(text="during")

    async def gone() -> bool:  # the kill lands a moment later; until then, the old one answers
        return not {front.name, back.name} <= (await _listed(registry) or set())

    async def answers() -> bool:
        return await _listed(registry) is not None

    async def rebuilt() -> bool:
        return {front.name, back.name} <= (await _listed(registry) or set())

    # A restart is a new worker process, slow on a loaded machine. Once the new registry
    # answers, a first contact waits for its peer's entry rather than failing, and every
    # host is in it again within a lease period.
    await _eventually(gone, within=60)
    await _eventually(answers, within=60)
    assert await mesh.ask(back.name, Ping(text="after"), expect=Pong) == Pong(text="after")
    await _eventually(rebuilt, within=mesh.config.lease_s)


async def test_a_restarted_registry_has_a_lookup_wait_for_a_name_it_lacks(mesh: Mesh) -> None:
    lease_s = 5.0  # a margin for a loaded machine: the checks below run within it
    actor = ray.remote(Registry).options(num_cpus=0, max_restarts=1).remote(lease_s)
    client = RegistryClient(actor)
    info = _info("returning")
    await client.register(info, None)
    assert await client.lookup("unknown") is None  # a registry never restarted: no wait
    ray.kill(actor, no_restart=False)

    async def restarted() -> bool:  # answering, and empty
        return await _listed(actor) == set()

    await _eventually(restarted, within=60)
    waiting = asyncio.ensure_future(client.lookup("returning"))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # the name may yet come back
    await client.register(info, None)  # as the host's next renewal would
    found = await waiting
    assert found is not None
    assert found[0].incarnation == info.incarnation
    assert await actor.rebuilding_s.remote() > 0
    assert await client.lookup("never") is None  # only once the rebuild is over
    assert await actor.rebuilding_s.remote() == 0


async def test_a_lookup_for_an_incarnation_seen_dead_leaves_its_handle_out(spawn: Spawn) -> None:
    info = await spawn(Echo, "mourned")
    client = RegistryClient.existing(namespace=ray.get_runtime_context().namespace)
    found = await client.lookup(info.name, unless=info.incarnation)
    assert found is not None
    assert found[0].incarnation == info.incarnation
    assert found[1] is None  # the caller will not call it: no handle to deserialize
    live = await client.lookup(info.name, unless="an-older-incarnation")
    assert live is not None
    assert live[1] is not None
