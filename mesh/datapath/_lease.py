"""A host's registry lease, renewed from its control lane with the main loop's health.

Renewals carry the main loop's lag, so the registry shows a host whose loop is stuck as
unhealthy instead of letting it vanish; a starved loop lags without being stuck, which
the heartbeat tells apart. The health is looked at often (every half of
``stuck_after_s``) but sent only when it changed or the lease is due (a third of
``lease_s``): a call from every agent twice a second was most of the registry's work,
while what reads health live (the supervisor, ``raymesh status``) asks the host itself.
"""

from __future__ import annotations

import asyncio
import time
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
        due_every = self.config.lease_s / 3
        look_every = min(due_every, max(self.config.stuck_after_s / 2, 0.1))
        sent: bool | None = None  # the health the registry has from this host
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(look_every)
            lag = self.heartbeat.lag_s()
            healthy = await self.loop_runs(lag)
            # Half a look early rather than a whole look late: sleeps drift.
            if healthy == sent and time.monotonic() - renewed < due_every - look_every / 2:
                continue
            try:
                if await self.registry.renew(self.info.name, self.info.incarnation,
                                             healthy=healthy, loop_lag_s=lag):  # fmt: skip
                    sent = healthy
                else:
                    await self.registry.register(self.info, self.handle)
                    sent = None  # registered with its entry's health: the loop's goes next
                    self.log.info("registered again after the registry lost the entry")
            except MeshError as exc:
                self.log.warning("lease renewal failed", error=str(exc))
                continue
            renewed = time.monotonic()
