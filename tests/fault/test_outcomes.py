"""On real Ray: an ask whose peer died says whether it may have run (outcome unknown) or not."""

from __future__ import annotations

import asyncio

import pytest
import ray
from _agents import Boom, Echo, Member, Ping, Pong, Sleep
from conftest import Spawn

from mesh import DiedBeforeRunError, HandlerError, Mesh, OutcomeUnknownError

pytestmark = pytest.mark.ray


async def test_an_ask_cut_short_by_a_kill_is_outcome_unknown_and_the_next_never_runs(
    mesh: Mesh, spawn: Spawn
) -> None:
    info = await spawn(Echo, "victim")
    asking = asyncio.create_task(mesh.ask(info.name, Sleep(seconds=30), timeout=30))
    await asyncio.sleep(0.5)
    ray.kill(await mesh.actor(info.name))
    with pytest.raises(OutcomeUnknownError, match="may or may not have been handled"):
        await asking
    # The registry still lists the dead incarnation (its lease has not lapsed), but
    # this edge saw it die: nothing is sent, and the error says so.
    with pytest.raises(DiedBeforeRunError, match="no successor has registered"):
        await mesh.ask(info.name, Ping(), timeout=10)


async def test_a_crash_answers_the_asks_still_queued_with_died_before_run(
    mesh: Mesh, spawn: Spawn
) -> None:
    info = await spawn(Member, "crasher")
    await mesh.ask(info.name, Ping(), timeout=10)  # the link exists: the asks below keep order
    running = asyncio.create_task(mesh.ask(info.name, Sleep(seconds=0.5), timeout=10))
    crashing = asyncio.create_task(mesh.ask(info.name, Boom(text="bad state"), timeout=10))
    queued = asyncio.create_task(mesh.ask(info.name, Ping(), timeout=10))
    assert isinstance(await running, Pong)
    with pytest.raises(HandlerError, match="bad state"):
        await crashing
    with pytest.raises(DiedBeforeRunError, match="stopped before handling it"):
        await queued
