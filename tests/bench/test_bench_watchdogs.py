"""The instrumentation's cost is measured in paired rounds, on and off back to back.

No speed is asserted (this machine is shared and noisy): what must hold is that each
round measures both sides and the figure is the median round's ratio.
"""

from __future__ import annotations

import statistics

import pytest

from benchmarks.watchdogs import cost
from mesh import Mesh


@pytest.mark.ray
@pytest.mark.timeout(240)
async def test_the_cost_is_the_median_of_paired_rounds(mesh: Mesh) -> None:
    measured = await cost(mesh, count=200, rounds=3)

    assert len(measured.round_ratios) == 3
    assert all(r > 0 for r in measured.round_ratios)
    assert measured.ratio == statistics.median(measured.round_ratios)
    assert measured.on_msgs_per_s > 0
    assert measured.off_msgs_per_s > 0
