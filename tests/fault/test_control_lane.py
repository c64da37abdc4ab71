"""The control lane answers while the main loop is blocked, however the block falls.

A handler that blocks the loop just as a Ray call to its host ends caught Ray 2.60 with
the call's result not yet handed back: the fiber thread waiting for it blocked, then
the actor's dispatch of every call behind it, the control lane's included. The host
settles Ray's calls in the step that ends them (mesh/_compat.py), so the lane answers.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from _agents import BlockAfterNextCall, CallEndBlocker, FactorySettingBlocker
from conftest import Spawn

from mesh import Mesh

BLOCK_S = 5.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("blocker", [CallEndBlocker, FactorySettingBlocker])
async def test_the_lane_answers_a_loop_blocked_as_a_call_ends(
    mesh: Mesh, spawn: Spawn, blocker: type[CallEndBlocker]
) -> None:
    # FactorySettingBlocker sets a task factory in on_start: the host chains it.
    info = await spawn(blocker, "blocker")
    host = await mesh.actor(info.name)
    await host.health.remote()
    await mesh.tell(info.name, BlockAfterNextCall(seconds=BLOCK_S))
    await asyncio.sleep(0.3)
    # The loop blocks as the first Ray call to end after the tell was taken does (the
    # tell's own, or this ping); the second ping is dispatched while it is blocked.
    first_sent = time.monotonic()
    for _ in range(2):
        host.ping.remote()
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.4)  # a lag over the host's stuck limit (1 s)

    health = await asyncio.wait_for(host.health.remote(), timeout=2.0)
    assert time.monotonic() - first_sent < BLOCK_S  # answered while the loop was blocked
    assert health["loop_lag_s"] > 0.5
    assert health["healthy"] is False


async def test_a_host_checks_at_start_that_rays_calls_settle(mesh: Mesh, spawn: Spawn) -> None:
    # The host's start runs inside Ray's call coroutine: on this Ray it is recognised,
    # so the settling applies (a renamed coroutine would read False, with a warning).
    info = await spawn(CallEndBlocker, "checked")
    assert (await mesh.stats(info.name)).ray_calls_settle is True
