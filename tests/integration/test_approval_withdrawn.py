"""A conversation cancelled at an approval checkpoint withdraws the checkpoint at once."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from _agents import Scripted
from conftest import Spawn

from mesh import Mesh
from mesh.control._patterns import PatternConductor
from protocols import Result, Task

pytestmark = pytest.mark.ray


async def _listed(mesh: Mesh, trace_id: str) -> list[str]:
    return [p.id for p in await mesh.approvals() if p.trace_id == trace_id]


async def test_cancelling_the_conversation_takes_its_checkpoint_off_the_desk(
    mesh: Mesh, spawn: Spawn
) -> None:
    # Before: the checkpoint stayed on the desk (and in `raymesh approvals`) until its
    # 60 s deadline, though nobody waited for its decision any more.
    proposer = await spawn(Scripted, "w-proposer")
    conductor = await spawn(PatternConductor, "w-approver",
                            pattern={"name": "approval", "proposer": proposer.name,
                                     "wait_s": 60})  # fmt: skip
    trace_id = "c4" * 16
    asking = asyncio.ensure_future(
        mesh.ask(conductor.name, Task(text="ship it"), trace_id=trace_id, timeout=90, expect=Result)
    )
    deadline = time.monotonic() + 30
    while not await _listed(mesh, trace_id):
        assert time.monotonic() < deadline, "no checkpoint was posted"
        await asyncio.sleep(0.1)
    asking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asking
    deadline = time.monotonic() + 5
    while listed := await _listed(mesh, trace_id):
        assert time.monotonic() < deadline, f"still pending 5 s after the cancel: {listed}"
        await asyncio.sleep(0.1)
