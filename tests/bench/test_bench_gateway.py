"""The gateway benchmark runs end to end: both paths at 1, 8 and 32 clients, with ratios.

Run as a subprocess (`python -m benchmarks gateway`), at its smallest. The figures are
noisy here; the test asserts that each was measured, not what it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gateway_bench_measures_both_paths_at_each_level(tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    env.pop("RAY_ADDRESS", None)  # its own local Ray, not the test session's
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gateway", "--quick", "--count", "40",
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=580, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
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
