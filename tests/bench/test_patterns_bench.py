"""The patterns benchmark runs end to end and counts each pattern's messages exactly.

Run as a subprocess, the way people run it (`python -m benchmarks` from a checkout).
No timing is asserted (the machine is shared); the message counts are the patterns'
own arithmetic: hub N + 2, mesh review N^2 + 2 (the task, the work, the assembly).
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
def test_hub_and_mesh_review_are_measured_with_their_message_counts(tmp_path: Path) -> None:
    out = tmp_path / "patterns.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    env.pop("RAY_ADDRESS", None)  # its own local Ray, not the test session's
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "patterns", "--agents", "3", "--count", "2",
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=160, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())["patterns"]
    by = {r["pattern"]: r for r in report["rows"]}
    assert by.keys() == {"hub", "mesh_review"}
    # hub: task + 3 requests + assemble; mesh: task + 3 drafts + 3 x 2 reviews + assemble.
    assert by["hub"]["messages_per_conversation"] == 5
    assert by["mesh_review"]["messages_per_conversation"] == 11
    assert all(r["per_s"] > 0 and r["agents"] == 3 for r in by.values())
    ratio = report["mesh_over_hub"]["3"]
    assert ratio["messages"] == pytest.approx(11 / 5)
    assert ratio["per_s"] == pytest.approx(by["mesh_review"]["per_s"] / by["hub"]["per_s"])
