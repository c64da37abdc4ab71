"""The gateway benchmark runs end to end: both paths at 1, 8 and 32 clients, with ratios.

Run as a subprocess (`python -m benchmarks gateway`), at its smallest. The figures are
noisy here; the test asserts that each was measured, not what it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gateway_bench_measures_both_paths_at_each_level(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    done = bench("gateway", "--quick", "--count", "40", "--json", str(out), timeout=580)
    report = json.loads(out.read_text())["gateway"]
    rows = {(row["path"], row["clients"]): row for row in report["rows"]}
    assert set(rows) == {(path, n) for path in ("direct", "gateway") for n in (1, 8, 32)}
    for row in rows.values():
        assert row["requests"] == 40
        assert row["errors"] == 0
        assert row["per_s"] > 0
        assert row["p50_ms"] <= row["p99_ms"]
    assert set(report["ratios"]) == {"1", "8", "32"}
    for ratio in report["ratios"].values():
        assert ratio["per_s"] > 0
    assert "vs direct" in done.stdout
