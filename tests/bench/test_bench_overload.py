"""The overload benchmark runs end to end: the runner reports the chaos scenario's figures.

Run as a subprocess (`python -m benchmarks overload`), briefly. The scenario's guarantees
are asserted by its own test (tests/fault/test_backpressure.py); here, that the runner
wires it and every offered send is accounted for.
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
@pytest.mark.timeout(170)
def test_overload_accounts_for_every_send_under_both_policies(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    env.pop("RAY_ADDRESS", None)  # its own local Ray, not the test session's
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "overload", "--overload-s", "3", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=160, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {run["policy"]: run for run in json.loads(out.read_text())["overload"]}
    assert set(runs) == {"error", "wait"}
    for run in runs.values():
        ended = run["accepted"] + run["mailbox_full"] + run["outbox_full"] + run["unsettled"]
        assert ended == run["offered"]
        assert run["errors"] == {}
        assert run["untyped"] == 0
        assert run["producer_rss_mb"]
        assert run["consumer_rss_mb"]
    # Refused at the consumer's door under "error"; held (not refused) under "wait".
    assert runs["error"]["mailbox_full"] > 0
    assert runs["wait"]["mailbox_full"] == 0
    assert runs["wait"]["unsettled"] > 0
