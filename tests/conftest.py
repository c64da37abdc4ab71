"""One real local Ray for the whole test session (started on first use), per-test cleanup."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mesh import Agent, AgentInfo, Mesh, MeshConfig, MeshError

_names = itertools.count()

Spawn = Callable[..., Awaitable[AgentInfo]]


@pytest.fixture(scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    # Ray workers import the test agents (tests/_agents.py) by module name, as they
    # would a user's package.
    here = str(Path(__file__).parent)
    m = Mesh.local(
        num_cpus=8,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
        config=MeshConfig(
            lease_s=3.0,
            ask_timeout_s=20.0,
            max_hops=16,
            state_dir=tmp_path_factory.mktemp("state"),  # no snapshots from earlier runs
        ),
    )
    yield m
    await m.shutdown()


@pytest.fixture
async def spawn(mesh: Mesh) -> AsyncIterator[Spawn]:
    """Spawn agents with names unique to the test; stop them when it ends."""
    started: list[str] = []

    async def _spawn(agent_cls: type[Agent], name: str, **kwargs: Any) -> AgentInfo:
        unique = f"{name}-{next(_names)}"
        info = await mesh.spawn(agent_cls, name=unique, **kwargs)
        started.append(unique)
        return info

    yield _spawn
    for name in reversed(started):
        with contextlib.suppress(MeshError):  # already killed by the test
            await mesh.stop(name)
