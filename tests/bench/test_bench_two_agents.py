"""Two agents beside raw Ray: every scenario measures both, and asks one at a time are
timed in paired rounds, each side pooled over the same number of rounds.

No speed is asserted (this machine is shared and noisy): what must hold is the rows'
shape and that both sides of the idle round trip were timed over the same asks.
"""

from __future__ import annotations

import pytest

from benchmarks.two_agents import IDLE_ROUNDS, run
from mesh import Mesh


@pytest.mark.ray
@pytest.mark.timeout(240)
async def test_each_scenario_measures_raymesh_and_raw_ray_and_idle_asks_are_paired(
    mesh: Mesh,
) -> None:
    rows = await run(mesh, count=120)

    assert [(r.scenario, r.system) for r in rows] == [
        (scenario, system)
        for scenario in ("tell, windowed", "ask, windowed", "ask, one at a time")
        for system in ("raymesh", "raw Ray")
    ]
    idle = [r for r in rows if r.window == 1]
    assert [r.messages for r in idle] == [200 // IDLE_ROUNDS * IDLE_ROUNDS] * 2
    assert all(r.msgs_per_s > 0 and 0 < r.p50_ms <= r.p99_ms for r in rows)
