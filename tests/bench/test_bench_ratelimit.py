"""`raymesh bench ratelimit --quick` runs end to end: with the limiter every call completes
and no 429 comes back, without it 429s do; the cache halves a repeated workload's requests
and cost.

Run as a subprocess (`python -m benchmarks ratelimit`), as `raymesh bench` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_ratelimit_benchmark_shows_the_limiter_and_the_cache_at_work(
    bench: Bench, tmp_path: Path
) -> None:
    out = tmp_path / "ratelimit.json"
    done = bench("ratelimit", "--quick", "--json", str(out), timeout=380)
    assert "one key's rate limit shared by 8 agents" in done.stdout
    figures = json.loads(out.read_text())["ratelimit"]
    rows = {row["limiter"]: row for row in figures["limits"]}
    assert rows["on"]["completed"] == rows["on"]["calls"]
    assert rows["on"]["http_429"] <= 1
    assert rows["off"]["http_429"] > 0
    assert rows["on"]["calls_per_min"] <= 1.1 * rows["on"]["limit_per_min"] + 60
    cache = {row["cache"]: row for row in figures["cache"]}
    assert cache["off"]["model_requests"] == cache["off"]["calls"]
    assert cache["on"]["model_requests"] == cache["on"]["calls"] // 2
    assert cache["on"]["cost_usd"] == pytest.approx(cache["off"]["cost_usd"] / 2)
