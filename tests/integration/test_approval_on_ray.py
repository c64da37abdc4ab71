"""Human approval on Ray: a conversation waits at a checkpoint until another client decides."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
import ray
from _agents import Scripted
from conftest import Spawn

from mesh import CheckpointNotFoundError, HandlerError, Mesh
from mesh.control._patterns import PatternConductor
from protocols import Result, Task
from protocols.patterns import Checkpoint

pytestmark = [pytest.mark.ray, pytest.mark.slow]


async def _cli(mesh: Mesh, *args: str) -> str:
    """Run ``raymesh ARGS`` in another process joined to this test's Ray; return stdout."""
    address = ray.get_runtime_context().gcs_address
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesh.cli", *args, "--address", address,
        "--namespace", mesh.config.namespace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _waiting(mesh: Mesh, trace_id: str, level: int = 0) -> Checkpoint:
    deadline = time.monotonic() + 30
    while True:
        found = [p for p in await mesh.approvals() if p.trace_id == trace_id and p.level == level]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "no checkpoint was posted"
        await asyncio.sleep(0.1)


async def _start(
    mesh: Mesh, spawn: Spawn, trace_id: str, **pattern: Any
) -> tuple[asyncio.Task[Result], str]:
    proposer = await spawn(Scripted, "proposer")
    conductor = await spawn(
        PatternConductor, "approver", pattern={"name": "approval", "proposer": proposer.name,
                                               **pattern},
    )  # fmt: skip
    asking = asyncio.ensure_future(
        mesh.ask(conductor.name, Task(text="ship it"), trace_id=trace_id, timeout=90, expect=Result)
    )
    return asking, proposer.name


async def test_a_run_waits_until_another_terminal_edits_and_approves_it(
    mesh: Mesh, spawn: Spawn
) -> None:
    doer = await spawn(Scripted, "doer")
    trace_id = "ab" * 16
    asking, proposer = await _start(mesh, spawn, trace_id, executor=doer.name, wait_s=60)
    point = await _waiting(mesh, trace_id)
    assert point.proposal == f"{proposer}(ship it)"
    assert point.data["task"] == "ship it"
    listed = json.loads(await _cli(mesh, "approvals", "--json"))
    assert point.id in [p["id"] for p in listed]
    assert not asking.done()  # the conversation is waiting for a person

    out = await _cli(mesh, "approve", point.id, "--edit", "ship it carefully")
    assert f"checkpoint {point.id} edited" in out
    result = await asking
    assert result.text == f"{doer.name}(ship it carefully)"  # the executor got the edit
    assert result.data["decision"] == "edit"
    assert result.data["decided_by"] == "raymesh-cli"
    assert result.data["by_policy"] is False
    with pytest.raises(CheckpointNotFoundError):
        await mesh.approve(point.id)  # decided already


async def test_nobody_deciding_rejects_by_default(mesh: Mesh, spawn: Spawn) -> None:
    asking, _ = await _start(mesh, spawn, "ac" * 16, wait_s=1)
    with pytest.raises(HandlerError) as caught:
        await asking
    assert caught.value.remote_type == "ApprovalTimeoutError"
    assert [p for p in await mesh.approvals() if p.trace_id == "ac" * 16] == []  # withdrawn


async def test_the_approve_policy_approves_on_timeout(mesh: Mesh, spawn: Spawn) -> None:
    asking, proposer = await _start(mesh, spawn, "ad" * 16, wait_s=1, on_timeout="approve")
    result = await asking
    assert result.text == f"{proposer}(ship it)"
    assert (result.data["decision"], result.data["by_policy"]) == ("approve", True)


async def test_escalation_waits_one_level_up_where_a_rejection_ends_it(
    mesh: Mesh, spawn: Spawn
) -> None:
    trace_id = "ae" * 16
    asking, _ = await _start(mesh, spawn, trace_id, wait_s=5, on_timeout="escalate")
    upper = await _waiting(mesh, trace_id, level=1)
    await mesh.reject(upper.id, reason="not this week")
    with pytest.raises(HandlerError) as caught:
        await asking
    assert caught.value.remote_type == "ApprovalRejectedError"
    assert "not this week" in caught.value.message
