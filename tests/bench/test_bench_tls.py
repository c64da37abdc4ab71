"""The tls suite runs both sides end to end and reports TLS / plain for every point.

Run as `python -m benchmarks tls` in a subprocess, in its tiniest configuration. No
timing is asserted (this machine is shared and noisy): what must hold is that both
sides did the work, that the TLS side really ran TLS, and the report's shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench

TOPOLOGIES = {"mesh", "hub", "raw-mesh", "raw-hub"}
MODES = ("tell", "ask")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_tls_suite_measures_both_sides_and_reports_the_ratio(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "tls.json"
    done = bench(
        "tls", "--quick", "--agents", "2", "--count", "20", "--json", str(out), timeout=390
    )
    assert "cost of TLS" in done.stdout
    tls = json.loads(out.read_text())["tls"]

    assert tls["notes"] == []  # neither side failed a point
    assert tls["rounds"] == 1
    assert tls["speaks_tls"] == {"plain": False, "tls": True}
    rows = tls["rows"]
    assert {(r["scenario"], r["topology"], r["mode"]) for r in rows} == {
        (s, t, m) for s in ("plain", "tls") for t in TOPOLOGIES for m in MODES
    }
    for row in rows:
        assert row["agents"] == 2
        assert row["messages"] >= 20
        assert row["msgs_per_s"] > 0
    ratios = tls["tls_over_plain"]
    assert set(ratios) == set(MODES)
    for mode in MODES:
        assert set(ratios[mode]) == {f"{t}, N=2, 1024 B" for t in TOPOLOGIES}
        assert all(ratio > 0 for ratio in ratios[mode].values())
    medians = tls["tls_over_plain_median"]
    assert set(medians) == TOPOLOGIES
    assert all(ratio > 0 for ratio in medians.values())
    assert "median over the points" in done.stdout
