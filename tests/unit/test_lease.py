"""A host's lease: renewed when due or when the loop's health changed, not at every look."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import structlog

from mesh.config import MeshConfig
from mesh.datapath._lease import Lease


class _Registry:
    """Records renewals; answers as a registry that lost the entry when told to."""

    def __init__(self) -> None:
        self.renewals: list[bool] = []
        self.registrations = 0
        self.lost = False

    async def renew(self, name: str, incarnation: str, *, healthy: bool, loop_lag_s: float) -> bool:
        self.renewals.append(healthy)
        if self.lost:
            self.lost = False
            return False
        return True

    async def register(self, info: Any, handle: Any) -> None:
        self.registrations += 1


class _Heartbeat:
    """A main loop whose lag, and whether it is blocked, the test sets."""

    def __init__(self) -> None:
        self.lag = 0.0

    def lag_s(self) -> float:
        return self.lag

    async def blocked(self) -> bool:
        return self.lag > 0


def _lease(registry: _Registry, heartbeat: _Heartbeat, *, lease_s: float) -> Lease:
    return Lease(
        info=cast(Any, SimpleNamespace(name="a", incarnation="i1")),
        handle=None,
        registry=cast(Any, registry),
        heartbeat=cast(Any, heartbeat),
        config=MeshConfig(lease_s=lease_s, stuck_after_s=0.2),
        log=structlog.get_logger(),
    )


async def _run_for(lease: Lease, seconds: float) -> None:
    task = asyncio.create_task(lease.renew())
    await asyncio.sleep(seconds)
    task.cancel()


async def test_a_healthy_host_renews_once_a_third_of_its_lease_not_at_every_look() -> None:
    # Looks every 0.1 s (half of stuck_after_s), renewals due every 0.4 s: over 1.1 s that
    # is three renewals (0.1, 0.5, 0.9 s), where renewing at every look made ten or eleven.
    registry = _Registry()
    await _run_for(_lease(registry, _Heartbeat(), lease_s=1.2), 1.1)
    assert 2 <= len(registry.renewals) <= 4
    assert set(registry.renewals) == {True}


async def test_a_change_of_health_is_renewed_at_the_next_look_both_ways() -> None:
    registry, heartbeat = _Registry(), _Heartbeat()
    task = asyncio.create_task(_lease(registry, heartbeat, lease_s=30.0).renew())
    await asyncio.sleep(0.35)  # the first look sends the health, then nothing is due
    assert registry.renewals == [True]
    heartbeat.lag = 1.0  # blocked
    await asyncio.sleep(0.35)
    assert registry.renewals == [True, False]
    heartbeat.lag = 0.0
    await asyncio.sleep(0.35)
    task.cancel()
    assert registry.renewals == [True, False, True]


async def test_a_host_the_registry_lost_registers_and_then_sends_its_health() -> None:
    registry = _Registry()
    registry.lost = True
    await _run_for(_lease(registry, _Heartbeat(), lease_s=30.0), 0.35)
    # Refused, registered again (with its entry's health), and renewed at the next look.
    assert registry.registrations == 1
    assert registry.renewals == [True, True]
