"""The approval desk's bookkeeping, in this process (on Ray it is the same class, in an actor)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from mesh.control._approvals import ApprovalDesk
from mesh.control._patterns import parse_pattern
from protocols.patterns import Checkpoint, Decision, DecisionKind


async def test_a_decision_reaches_the_waiter_and_leaves_nothing_pending() -> None:
    desk = ApprovalDesk()
    await desk.post(Checkpoint(id="cp-1", proposal="ship"))
    waiting = asyncio.ensure_future(desk.wait_decision("cp-1", 5.0))
    await asyncio.sleep(0)
    assert [p.id for p in await desk.pending()] == ["cp-1"]
    assert await desk.decide("cp-1", Decision(kind=DecisionKind.EDIT, by="ann", edited="ship it"))
    decision = await waiting
    assert decision is not None
    assert (decision.kind, decision.edited) == (DecisionKind.EDIT, "ship it")
    assert await desk.pending() == []
    assert not await desk.decide("cp-1", Decision(kind=DecisionKind.APPROVE, by="bob"))


async def test_a_timed_out_checkpoint_is_withdrawn_and_can_no_longer_be_decided() -> None:
    desk = ApprovalDesk()
    await desk.post(Checkpoint(id="cp-2", proposal="ship"))
    assert await desk.wait_decision("cp-2", 0.01) is None
    assert await desk.pending() == []
    assert not await desk.decide("cp-2", Decision(kind=DecisionKind.APPROVE, by="late"))


async def test_a_decision_before_anyone_waits_is_kept_for_the_waiter() -> None:
    desk = ApprovalDesk()
    await desk.post(Checkpoint(id="cp-3", proposal="ship"))
    assert await desk.decide("cp-3", Decision(kind=DecisionKind.REJECT, by="ann", reason="no"))
    decision = await desk.wait_decision("cp-3", 0.01)
    assert decision is not None
    assert decision.reason == "no"


def test_an_unknown_timeout_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="on_timeout"):
        parse_pattern({"name": "approval", "proposer": "p", "on_timeout": "shrug"})
