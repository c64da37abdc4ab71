"""A host's registry lease, renewed from its control lane with the main loop's health.

Renewals carry the main loop's lag, so the registry shows a host whose loop is stuck as
unhealthy instead of letting it vanish; a starved loop lags without being stuck, which
the heartbeat tells apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mesh.agent import AgentInfo
from mesh.config import MeshConfig
from mesh.datapath._directory import RegistryClient
from mesh.datapath._probes import Heartbeat
from mesh.errors import MeshError

__all__ = ["Lease"]


class Lease:
    """Keeps one incarnation registered while it runs, and says whether its loop runs."""

    def __init__(
        self,
        *,
        info: AgentInfo,
        handle: Any,
        registry: RegistryClient,
        heartbeat: Heartbeat,
        config: MeshConfig,
        log: Any,
    ) -> None:
        self._info = info
        self._handle = handle
        self._registry = registry
        self._heartbeat = heartbeat
        self._config = config
        self._log = log

    async def loop_runs(self, lag: float) -> bool:
        """On the control lane: a lag over the limit is a blocked loop only if the loop
        cannot run a callback now."""
        return lag < self._config.stuck_after_s or not await self._heartbeat.blocked()

    async def renew(self) -> None:
        """Renew until cancelled; register again if the registry lost the entry."""
        period = min(self._config.lease_s / 3, max(self._config.stuck_after_s / 2, 0.1))
        while True:
            await asyncio.sleep(period)
            lag = self._heartbeat.lag_s()
            healthy = await self.loop_runs(lag)
            try:
                if not await self._registry.renew(self._info.name, self._info.incarnation,
                                                  healthy=healthy, loop_lag_s=lag):  # fmt: skip
                    await self._registry.register(self._info, self._handle)
                    self._log.info("registered again after the registry lost the entry")
            except MeshError as exc:
                self._log.warning("lease renewal failed", error=str(exc))
