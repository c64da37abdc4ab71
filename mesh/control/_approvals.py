"""Human approval on the mesh: checkpoints held by one actor per namespace, the approval desk.

A conversation at an approval checkpoint posts it to the desk and waits there; the desk
(a detached Ray actor, like the registry) holds the proposal, its trace and its data
until a person approves, edits or rejects it, through `Mesh.approve` / `Mesh.reject` or
``raymesh approve`` / ``raymesh reject`` from another terminal, or until the timeout
policy decides. The conversation's state lives in that actor, not in a terminal. A
conversation cancelled while it waits withdraws its checkpoint at once: nobody is left
to act on a decision.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import ray
from ray.exceptions import RayError

from mesh._placement import on_head_node
from mesh.datapath import translate
from protocols.patterns import Checkpoint, Decision, DecisionKind, PatternError

__all__ = ["APPROVALS_NAME", "ApprovalDesk", "CheckpointNotFoundError", "RayApprovalGate"]

#: The desk's actor name in each namespace.
APPROVALS_NAME = "raymesh.approvals"


class CheckpointNotFoundError(PatternError, KeyError):
    """No checkpoint of that id is pending: it was decided, timed out, or never posted."""

    details: ClassVar[tuple[str, ...]] = ("checkpoint",)

    def __init__(self, message: str, *, checkpoint: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.checkpoint = checkpoint


class ApprovalDesk:
    """The actor holding a namespace's pending checkpoints until someone decides."""

    def __init__(self) -> None:
        self._pending: dict[str, Checkpoint] = {}
        self._decided: dict[str, Decision] = {}
        self._events: dict[str, asyncio.Event] = {}

    async def post(self, point: Checkpoint) -> None:
        """Make `point` pending."""
        self._pending[point.id] = point
        self._events[point.id] = asyncio.Event()

    async def wait_decision(self, checkpoint_id: str, timeout: float | None) -> Decision | None:
        """Return the decision on a checkpoint, or None (and withdraw it) after `timeout`."""
        event = self._events[checkpoint_id]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            self._pending.pop(checkpoint_id, None)
            return None
        finally:
            if checkpoint_id not in self._pending:
                self._events.pop(checkpoint_id, None)
        return self._decided.pop(checkpoint_id, None)  # None: withdrawn

    async def withdraw(self, checkpoint_id: str) -> None:
        """Take a checkpoint off the desk undecided: its conversation no longer waits."""
        if self._pending.pop(checkpoint_id, None) is not None:
            self._events[checkpoint_id].set()

    async def decide(self, checkpoint_id: str, decision: Decision) -> bool:
        """Record `decision`; return False when no such checkpoint is pending."""
        if self._pending.pop(checkpoint_id, None) is None:
            return False
        self._decided[checkpoint_id] = decision
        self._events[checkpoint_id].set()
        return True

    async def pending(self) -> list[Checkpoint]:
        """Return the pending checkpoints, oldest first."""
        return list(self._pending.values())


class RayApprovalGate:
    """An `ApprovalGate` over the namespace's desk actor, usable from any process."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @classmethod
    def get_or_create(cls, *, namespace: str) -> RayApprovalGate:
        """Return a gate on the namespace's desk, starting the desk on first use."""
        actor = ray.remote(ApprovalDesk).options(
            name=APPROVALS_NAME,
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,
            scheduling_strategy=on_head_node(),
        )
        return cls(actor.remote())

    @classmethod
    def here(cls) -> RayApprovalGate:
        """Return the gate of the namespace this process runs in (inside an agent)."""
        return cls.get_or_create(namespace=ray.get_runtime_context().namespace)

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self.handle, method).remote(*args)
        except RayError as exc:
            raise translate(exc, agent=APPROVALS_NAME) from exc

    async def post(self, checkpoint: Checkpoint) -> None:
        """Make `checkpoint` visible to reviewers."""
        await self._call("post", checkpoint)

    async def wait_decision(self, checkpoint_id: str, *, timeout: float | None) -> Decision | None:
        """Return the decision on a checkpoint, or None if none came within `timeout`.

        Cancelled (its conversation was), it withdraws the checkpoint before it ends,
        so that reviewers no longer see it until its deadline.
        """
        try:
            decision: Decision | None = await self._call("wait_decision", checkpoint_id, timeout)
        except asyncio.CancelledError:
            # Sent, not awaited: the submission is synchronous, and a cancelled task
            # must not wait on another actor.
            self.handle.withdraw.remote(checkpoint_id)
            raise
        return decision

    async def decide(self, checkpoint_id: str, decision: Decision) -> None:
        """Record a reviewer's decision.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending.
            PeerDeadError: The desk actor is gone (as for every method here).
        """
        if not await self._call("decide", checkpoint_id, decision):
            raise CheckpointNotFoundError(
                f"no checkpoint {checkpoint_id!r} is pending",
                checkpoint=checkpoint_id,
                hint="`raymesh approvals` lists the pending ones; it may have timed out",
            )

    async def pending(self) -> list[Checkpoint]:
        """Return the checkpoints still waiting, oldest first."""
        points: list[Checkpoint] = await self._call("pending")
        return points

    async def approve(self, checkpoint_id: str, *, edit: str | None = None, by: str) -> None:
        """Approve a checkpoint, replacing its proposal with `edit` when given.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending.
        """
        kind = DecisionKind.APPROVE if edit is None else DecisionKind.EDIT
        await self.decide(checkpoint_id, Decision(kind=kind, by=by, edited=edit))

    async def reject(self, checkpoint_id: str, *, reason: str = "", by: str) -> None:
        """Reject a checkpoint; the waiting conversation fails with `ApprovalRejectedError`.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending.
        """
        await self.decide(checkpoint_id, Decision(kind=DecisionKind.REJECT, by=by, reason=reason))
