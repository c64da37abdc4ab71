"""`raymesh bench stream --quick` runs end to end and reports each figure beside its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_stream_suite_reports_ttft_per_hop_beside_its_target_and_chunks_per_second(
    bench: Bench, tmp_path: Path
) -> None:
    out = tmp_path / "stream.json"
    done = bench("stream", "--quick", "--json", str(out), timeout=280)
    assert "streaming: time to first token" in done.stdout
    figures = json.loads(out.read_text())["stream"]
    rows = {row["hops"]: row for row in figures["ttft"]}
    assert sorted(rows) == [0, 1, 2, 3]
    direct = rows[0]["ttft_ms"]
    for hops in (1, 2, 3):
        row = rows[hops]
        assert row["ttft_ms"] > 0
        assert row["ratio"] == pytest.approx(row["ttft_ms"] / direct)
        assert row["target_ms"] == pytest.approx(1.2 * direct + 5 * hops)
        assert row["met"] == (row["ttft_ms"] <= row["target_ms"])
    # More hops cost more: each adds a streaming call between two processes.
    assert rows[1]["ttft_ms"] < rows[3]["ttft_ms"]
    assert [t["hops"] for t in figures["throughput"]] == [1, 2]
    assert all(t["chunks"] == 1000 and t["per_s"] > 100 for t in figures["throughput"])
