"""Human-in-the-loop approval checkpoints.

A pattern that needs a person's say posts a `Checkpoint` to an `ApprovalGate` and waits
for an approve, edit or reject. The gate is an interface of async methods over plain
data, so that the in-memory gate here and a Ray actor behind ``raymesh approve/reject``
are interchangeable. What happens when nobody answers is a policy, stated up front:
reject (the safe default), approve, or escalate to another gate.
"""

from __future__ import annotations

import asyncio
import uuid
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from protocols.patterns.errors import ApprovalRejectedError, ApprovalTimeoutError

__all__ = [
    "ApprovalGate",
    "Checkpoint",
    "Decision",
    "DecisionKind",
    "InMemoryApprovalGate",
    "OnTimeout",
    "checkpoint",
]


class DecisionKind(StrEnum):
    """What a reviewer decided."""

    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


class OnTimeout(StrEnum):
    """What a checkpoint does when nobody decides in time."""

    REJECT = "reject"
    APPROVE = "approve"
    ESCALATE = "escalate"


class Checkpoint(BaseModel):
    """A proposal waiting for a decision."""

    id: str
    proposal: str
    trace_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: 0 for the first gate, one more for each escalation.
    level: int = 0


class Decision(BaseModel):
    """A decision on a checkpoint; ``edited`` replaces the proposal when editing."""

    kind: DecisionKind
    by: str
    edited: str | None = None
    reason: str = ""
    #: True when no person decided and the timeout policy did.
    by_policy: bool = False

    @property
    def text(self) -> str | None:
        """The edited proposal, or None when the caller's own proposal stands."""
        return self.edited


class ApprovalGate(Protocol):
    """Where checkpoints wait for people; every method may be a remote call."""

    async def post(self, checkpoint: Checkpoint) -> None:
        """Make `checkpoint` visible to reviewers."""
        ...

    async def wait_decision(self, checkpoint_id: str, *, timeout: float | None) -> Decision | None:
        """Return the decision on a checkpoint, or None if none came within `timeout`."""
        ...

    async def decide(self, checkpoint_id: str, decision: Decision) -> None:
        """Record a reviewer's decision (what ``raymesh approve/reject`` would call).

        Raises:
            KeyError: No such checkpoint is pending.
        """
        ...

    async def pending(self) -> list[Checkpoint]:
        """Return the checkpoints still waiting, oldest first."""
        ...


class InMemoryApprovalGate:
    """An `ApprovalGate` in this process, for tests and single-process tools."""

    def __init__(self) -> None:
        self._pending: dict[str, Checkpoint] = {}
        self._decided: dict[str, asyncio.Future[Decision]] = {}
        self._posted = asyncio.Event()

    async def post(self, checkpoint: Checkpoint) -> None:
        """Make `checkpoint` pending."""
        self._pending[checkpoint.id] = checkpoint
        self._decided[checkpoint.id] = asyncio.get_running_loop().create_future()
        self._posted.set()

    async def wait_posted(self) -> Checkpoint:
        """Wait until a checkpoint is pending and return the oldest (for tests and UIs)."""
        while not self._pending:
            self._posted.clear()
            await self._posted.wait()
        return next(iter(self._pending.values()))

    async def wait_decision(self, checkpoint_id: str, *, timeout: float | None) -> Decision | None:
        """Return the decision on `checkpoint_id`, or None after `timeout` seconds.

        Raises:
            KeyError: No such checkpoint was posted.
        """
        future = self._decided[checkpoint_id]
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            if future.done() or timeout is not None:
                self._pending.pop(checkpoint_id, None)

    async def decide(self, checkpoint_id: str, decision: Decision) -> None:
        """Record `decision`.

        Raises:
            KeyError: No such checkpoint is pending.
        """
        if checkpoint_id not in self._pending:
            raise KeyError(f"no pending checkpoint {checkpoint_id!r}")
        del self._pending[checkpoint_id]
        self._decided[checkpoint_id].set_result(decision)

    async def pending(self) -> list[Checkpoint]:
        """Return the pending checkpoints, oldest first."""
        return list(self._pending.values())


async def checkpoint(
    gate: ApprovalGate,
    proposal: str,
    *,
    timeout: float,
    on_timeout: OnTimeout = OnTimeout.REJECT,
    escalate_to: ApprovalGate | None = None,
    trace_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> Decision:
    """Post `proposal` for approval and return the approve or edit decision.

    Args:
        gate: Where reviewers see it.
        proposal: What is to be approved.
        timeout: Seconds to wait at each level.
        on_timeout: The policy when nobody decides in time.
        escalate_to: The gate for ``OnTimeout.ESCALATE`` (the same gate, one level up,
            when None); a timeout there rejects.
        trace_id: The conversation, for the reviewer's context and the errors.
        data: Anything a reviewer needs to see.

    Raises:
        ApprovalRejectedError: A reviewer rejected it.
        ApprovalTimeoutError: Nobody decided in time and the policy is reject (or the
            escalation timed out too).
    """
    point = Checkpoint(
        id=f"cp-{uuid.uuid4().hex[:16]}",
        proposal=proposal,
        trace_id=trace_id,
        data=dict(data or {}),
    )
    await gate.post(point)
    decision = await gate.wait_decision(point.id, timeout=timeout)
    if decision is None and on_timeout is OnTimeout.APPROVE:
        decision = Decision(kind=DecisionKind.APPROVE, by="policy", by_policy=True)
    elif decision is None and on_timeout is OnTimeout.ESCALATE:
        upper = escalate_to if escalate_to is not None else gate
        point = point.model_copy(update={"id": f"{point.id}-up", "level": point.level + 1})
        await upper.post(point)
        decision = await upper.wait_decision(point.id, timeout=timeout)
    if decision is None:
        raise ApprovalTimeoutError(
            f"nobody decided on checkpoint {point.id!r} within {timeout}s",
            checkpoint=point.id,
            trace_id=trace_id,
            hint="decide sooner, lengthen the timeout, or choose another on_timeout policy",
        )
    if decision.kind is DecisionKind.REJECT:
        raise ApprovalRejectedError(
            f"checkpoint {point.id!r} was rejected by {decision.by}: {decision.reason}",
            checkpoint=point.id,
            reason=decision.reason,
            trace_id=trace_id,
        )
    return decision
