"""A read-only join (`Mesh.connect(..., read_only=True)`, what `raymesh status`, `trace` and
`deadletters` use) reads a running mesh and leaves a namespace without one as it found it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import ray
from _agents import Echo, Ping
from conftest import Spawn

from mesh import ConfigError, Mesh, MeshConfig, MeshNotRunningError

pytestmark = pytest.mark.ray

_SERVICES = ("raymesh.registry", "raymesh.spans", "raymesh.types")


def _running(namespace: str) -> list[str]:
    found = []
    for name in _SERVICES:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            continue
        found.append(name)
    return found


async def test_a_namespace_without_a_mesh_is_named_and_left_without_services(mesh: Mesh) -> None:
    empty = f"nothing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(MeshNotRunningError, match=empty) as caught:
        Mesh.connect("auto", config=MeshConfig(namespace=empty), read_only=True)
    assert "--namespace" in (caught.value.hint or "")
    assert _running(empty) == []


async def test_a_read_only_mesh_reads_the_running_one_and_starts_nothing(
    mesh: Mesh, spawn: Spawn
) -> None:
    echo = await spawn(Echo, "echo")
    trace_id = uuid.uuid4().hex
    await mesh.ask(echo.name, Ping(text="hello"), trace_id=trace_id)
    look = Mesh.connect("auto", config=mesh.config, read_only=True)
    try:
        assert echo.name in {info.name for info in await look.agents()}
        assert (await look.stats(echo.name)).handled >= 1
        # Spans are shipped to the store in batches: wait for this conversation's.
        for _ in range(150):
            if await look.trace(trace_id):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the conversation's spans did not reach the read-only mesh in 15 s")
        with pytest.raises(ConfigError, match="read-only"):
            await look.spawn(Echo, name=f"never-{uuid.uuid4().hex[:6]}")
        with pytest.raises(ConfigError, match="read-only"):
            await look.team({"name": "never", "entry": "a", "agents": []})
    finally:
        await look.shutdown()
    # Shutting the look down stops nothing of the mesh it looked at.
    assert echo.name in {info.name for info in await mesh.agents()}
