"""Late replies and expired requests (`benchmarks.chaos.expiry`): dropped, counted, unhandled.

The CI form makes 10 replies late and 10 + 10 requests expire; the full form (100
each) runs with ``pytest -m long``. ``raymesh chaos --only expiry`` reports the same.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import late_and_expired
from mesh import Mesh

pytestmark = pytest.mark.ray


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "asks", [10, pytest.param(100, marks=[pytest.mark.slow, pytest.mark.long])],
    ids=["ci", "full"],
)  # fmt: skip
async def test_late_replies_are_dropped_and_counted_and_expired_requests_are_not_handled(
    mesh: Mesh, asks: int
) -> None:
    figures = await late_and_expired(mesh, asks=asks)
    # Every ask to the slow handler ended by its deadline, and its reply, when it came,
    # was dropped by the asker and counted (as a dead letter and in its stats).
    assert figures.late_outcomes == {"DeadlineExceededError": asks}
    assert figures.late_dead_letters == asks
    assert figures.late_counted == asks
    # Requests past their deadline: none handled, each an 'expired' dead letter.
    assert figures.queued_outcomes == {"DeadlineExceededError": asks}
    assert figures.expired == 2 * asks
    assert figures.expired_handled == 0
    assert figures.expired_dead_letters == figures.expired
