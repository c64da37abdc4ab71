"""Forged frames at a signed agent (`benchmarks.chaos.forged`): every one refused, typed, recorded.

The CI form builds its attacks from 20 signed frames; the full form (100) runs with
``pytest -m long``. ``raymesh chaos --only forged`` reports the same figures.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import forged_frames
from mesh import Mesh

pytestmark = pytest.mark.ray


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "frames", [20, pytest.param(100, marks=[pytest.mark.slow, pytest.mark.long])],
    ids=["ci", "full"],
)  # fmt: skip
async def test_a_signed_agent_refuses_every_forged_frame_and_still_takes_a_good_one(
    mesh: Mesh, frames: int
) -> None:
    figures = await forged_frames(mesh, frames=frames)
    attacks = {attack.name: attack for attack in figures.attacks}
    assert set(attacks) == {"every byte flipped", "wrong key", "replayed", "spoofed sender",
                            "type the access policy denies", "for another agent",
                            "for an earlier incarnation", "driver flag added after signing",
                            "an edge- name without the driver flag",
                            "replies from the wrong peer"}  # fmt: skip
    # Every byte of every frame, trailer included, was flipped once.
    assert attacks["every byte flipped"].attempts > frames * 52
    for attack in figures.attacks:
        assert attack.attempts > 0, attack
        assert attack.refused == attack.attempts, attack
        assert attack.typed == attack.attempts, attack
        assert attack.counted == attack.attempts, attack  # under its reason in the stats
        assert attack.dead_letters == attack.attempts, attack
    assert figures.reached_agent == 0
    assert figures.still_accepts
    assert figures.real_answer_after_wrong_peers
    assert figures.edge_name_refused
    assert figures.mac is not None
    assert figures.mac.held
