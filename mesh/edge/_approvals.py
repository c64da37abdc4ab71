"""Deciding a team's approval checkpoints from the driver: a mixin of `Mesh`."""

from __future__ import annotations

from mesh.config import MeshConfig
from mesh.control import RayApprovalGate
from mesh.datapath import Endpoint
from protocols.patterns import Checkpoint

__all__ = ["Approvals"]


class Approvals:
    """The approval desk, as a person at the driver uses it."""

    config: MeshConfig
    _edge: Endpoint

    async def approvals(self) -> list[Checkpoint]:
        """Return the approval checkpoints waiting for a person, oldest first."""
        return await self._approval_gate().pending()

    async def approve(self, checkpoint_id: str, *, edit: str | None = None) -> None:
        """Approve a waiting checkpoint; `edit` replaces its proposal.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending (decided or timed out).
        """
        await self._approval_gate().approve(checkpoint_id, edit=edit, by=self._edge.name)

    async def reject(self, checkpoint_id: str, *, reason: str = "") -> None:
        """Reject a waiting checkpoint: its conversation fails with `ApprovalRejectedError`.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending (decided or timed out).
        """
        await self._approval_gate().reject(checkpoint_id, reason=reason, by=self._edge.name)

    def _approval_gate(self) -> RayApprovalGate:
        return RayApprovalGate.get_or_create(namespace=self.config.namespace)
