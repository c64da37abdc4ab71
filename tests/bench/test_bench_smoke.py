"""The topology benchmark runs end to end and writes the JSON its consumers read.

Run as a subprocess, the way people run it (`python -m benchmarks` from a checkout),
in its tiniest configuration, with the autogen-core baseline in its own virtualenv.
No timing is asserted: this machine is shared and noisy; what must hold is the report's
shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench

TOPOLOGIES = {"mesh", "hub", "raw-mesh", "raw-hub", "autogen"}
ROW_FIELDS = {"scenario": str, "topology": str, "mode": str, "agents": int, "payload_bytes": int,
              "msgs_per_s": float}  # fmt: skip
OPTIONAL_FLOATS = ("p50_ms", "p95_ms", "p99_ms", "cpu_s_per_1k")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(400)  # the first run builds the autogen-core baseline's virtualenv
def test_topology_quick_writes_the_report(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "topo.json"
    bench("topology", "--quick", "--agents", "2", "--count", "20", "--json", str(out), timeout=390)
    report = json.loads(out.read_text())

    assert isinstance(report["raymesh"], str)
    assert isinstance(report["ray"], str)
    assert report["machine"]["cpus"] >= 1
    rows = report["rows"]
    assert {(r["topology"], r["mode"]) for r in rows} == {
        (t, m) for t in TOPOLOGIES for m in ("tell", "ask")
    }
    for row in rows:
        for name, kind in ROW_FIELDS.items():
            assert isinstance(row[name], kind), (name, row)
        for name in OPTIONAL_FLOATS:
            assert row[name] is None or isinstance(row[name], float), (name, row)
        assert row["topology"] in TOPOLOGIES
        assert row["mode"] in ("tell", "ask")
        assert row["msgs_per_s"] > 0
        if row["mode"] == "ask":
            assert row["p50_ms"] is not None
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    summary = report["summary"]
    for key in ("mesh_over_hub", "mesh_over_raw", "mesh_over_autogen"):
        assert key in summary
    assert set(summary["mesh_over_hub"]) == {"tell", "ask"}
    assert set(summary["mesh_over_raw"]) == {"tell", "ask"}
    assert set(summary["mesh_over_autogen"]) == {"tell", "ask"}  # the peer ran in this run


def test_a_preset_point_has_every_sender_fill_its_window_twice() -> None:
    # At N = 8 the quick preset's 1,000 messages are 125 a sender, inside one tell window
    # of 256: such a point timed a single burst. A preset raises it; --count does not.
    from benchmarks.topology import MIN_WINDOWS, PLANS, WINDOWS, per_sender_count

    quick = PLANS["quick"]
    assert per_sender_count(quick, 8, "tell", count=None) == MIN_WINDOWS * WINDOWS["tell"]
    assert per_sender_count(quick, 8, "ask", count=None) == MIN_WINDOWS * WINDOWS["ask"]
    assert per_sender_count(quick, 2, "ask", count=None) == quick.messages // 2
    assert per_sender_count(quick, 8, "tell", count=20) == 10
