"""A host's registry lease, renewed from its control lane with the main loop's health.

Renewals carry the main loop's lag, so the registry shows a host whose loop is stuck as
unhealthy instead of letting it vanish; a starved loop lags without being stuck, which
the heartbeat tells apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.datapath._directory import RegistryClient
from mesh.datapath._probes import Heartbeat
from mesh.errors import MeshError

__all__ = ["Lease"]


@dataclass(frozen=True, kw_only=True)
class Lease:
    """Keeps one incarnation registered while it runs, and says whether its loop runs."""

    info: AgentInfo
    handle: Any
    registry: RegistryClient
    heartbeat: Heartbeat
    config: MeshConfig
    log: Any

    async def loop_runs(self, lag: float) -> bool:
        """On the control lane: a lag over the limit is a blocked loop only if the loop
        cannot run a callback now."""
        return lag < self.config.stuck_after_s or not await self.heartbeat.blocked()

    async def renew(self) -> None:
        """Renew until cancelled; register again if the registry lost the entry."""
        period = min(self.config.lease_s / 3, max(self.config.stuck_after_s / 2, 0.1))
        while True:
            await asyncio.sleep(period)
            lag = self.heartbeat.lag_s()
            healthy = await self.loop_runs(lag)
            try:
                if not await self.registry.renew(self.info.name, self.info.incarnation,
                                                  healthy=healthy, loop_lag_s=lag):  # fmt: skip
                    await self.registry.register(self.info, self.handle)
                    self.log.info("registered again after the registry lost the entry")
            except MeshError as exc:
                self.log.warning("lease renewal failed", error=str(exc))
