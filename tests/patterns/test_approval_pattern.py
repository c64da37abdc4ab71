"""checkpoint and ApprovalGate: approve, edit, reject, and every timeout policy."""

from __future__ import annotations

import asyncio

import pytest

from protocols.patterns import (
    ApprovalRejectedError,
    ApprovalTimeoutError,
    Decision,
    DecisionKind,
    InMemoryApprovalGate,
    OnTimeout,
    checkpoint,
)


async def reviewer(gate: InMemoryApprovalGate, decision: Decision) -> None:
    point = await gate.wait_posted()
    await gate.decide(point.id, decision)


async def test_an_approval_returns_the_reviewers_decision() -> None:
    gate = InMemoryApprovalGate()
    person = asyncio.create_task(reviewer(gate, Decision(kind=DecisionKind.APPROVE, by="ana")))
    decision = await checkpoint(gate, "deploy v2", timeout=1.0)
    await person
    assert (decision.kind, decision.by, decision.by_policy) == (DecisionKind.APPROVE, "ana", False)
    assert await gate.pending() == []


async def test_an_edit_carries_the_edited_proposal() -> None:
    gate = InMemoryApprovalGate()
    edit = Decision(kind=DecisionKind.EDIT, by="ana", edited="deploy v2 to staging")
    person = asyncio.create_task(reviewer(gate, edit))
    decision = await checkpoint(gate, "deploy v2", timeout=1.0)
    await person
    assert decision.text == "deploy v2 to staging"


async def test_a_rejection_raises_approval_rejected_error_with_the_reason() -> None:
    gate = InMemoryApprovalGate()
    no = Decision(kind=DecisionKind.REJECT, by="ana", reason="too risky")
    person = asyncio.create_task(reviewer(gate, no))
    with pytest.raises(ApprovalRejectedError) as info:
        await checkpoint(gate, "drop the table", timeout=1.0, trace_id="t" * 32)
    await person
    assert info.value.reason == "too risky"


async def test_a_timeout_with_the_reject_policy_raises_approval_timeout_error() -> None:
    gate = InMemoryApprovalGate()
    with pytest.raises(ApprovalTimeoutError) as info:
        await checkpoint(gate, "p", timeout=0.01, on_timeout=OnTimeout.REJECT)
    assert info.value.checkpoint.startswith("cp-")
    assert isinstance(info.value, TimeoutError)
    assert await gate.pending() == []


async def test_a_timeout_with_the_approve_policy_approves_by_policy() -> None:
    gate = InMemoryApprovalGate()
    decision = await checkpoint(gate, "p", timeout=0.01, on_timeout=OnTimeout.APPROVE)
    assert (decision.kind, decision.by_policy) == (DecisionKind.APPROVE, True)


async def test_a_timeout_with_the_escalate_policy_asks_the_upper_gate() -> None:
    gate, boss = InMemoryApprovalGate(), InMemoryApprovalGate()
    person = asyncio.create_task(reviewer(boss, Decision(kind=DecisionKind.APPROVE, by="cto")))
    decision = await checkpoint(
        gate, "p", timeout=0.05, on_timeout=OnTimeout.ESCALATE, escalate_to=boss
    )
    await person
    assert decision.by == "cto"


async def test_an_escalation_nobody_answers_raises_approval_timeout_error() -> None:
    gate = InMemoryApprovalGate()
    with pytest.raises(ApprovalTimeoutError) as info:
        await checkpoint(gate, "p", timeout=0.01, on_timeout=OnTimeout.ESCALATE)
    assert info.value.checkpoint.endswith("-up")


async def test_deciding_an_unknown_checkpoint_raises_key_error() -> None:
    gate = InMemoryApprovalGate()
    with pytest.raises(KeyError):
        await gate.decide("cp-x", Decision(kind=DecisionKind.APPROVE, by="ana"))
