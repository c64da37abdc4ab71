"""`raymesh bench profile` runs end to end and writes the table the benchmarks guide renders.

Run as a subprocess, as people run it, at its smallest. No timing is asserted (the
machine is shared): what must hold is that every stage is measured and the rows add up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench

STAGES = ("encode", "sign", "send", "Ray call", "receive", "verify", "decode", "validate",
          "dispatch", "span", "reply")  # fmt: skip


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_profile_measures_every_stage_and_its_rows_add_up(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    bench("profile", "--count", "300", "--json", str(out), timeout=290)
    profile = json.loads(out.read_text())["profile"]
    assert set(STAGES) <= set(profile["rows"])
    scenarios = {s["scenario"]: s for s in profile["scenarios"]}
    assert set(scenarios) == {"tell", "ask", "ask, signed"}
    for name, s in scenarios.items():
        assert s["messages"] == 300
        assert abs(sum(s["us"].values()) - s["total_us"]) < 1e-6 * s["total_us"]
        assert 0 < s["runtime_us"] < s["total_us"]
        assert s["ray_calls_per_1k"] > 0
        for stage in ("encode", "send", "receive", "decode", "dispatch", "span"):
            assert s["us"][stage] > 0, (name, stage)
        signed = name == "ask, signed"
        assert (s["us"]["sign"] > 0) is signed
        assert (s["us"]["verify"] > 0) is signed
    # A tell has no reply: what little the row holds there is the run's own control asks.
    assert scenarios["tell"]["us"]["reply"] < scenarios["ask"]["us"]["reply"] / 4
