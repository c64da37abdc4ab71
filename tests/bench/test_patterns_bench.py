"""The patterns benchmark runs end to end and counts each pattern's messages exactly.

Run as a subprocess, the way people run it (`python -m benchmarks` from a checkout).
No timing is asserted (the machine is shared); the message counts are the patterns'
own arithmetic: hub N + 2, mesh review N^2 + 2 (the task, the work, the assembly).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(170)
def test_hub_and_mesh_review_are_measured_with_their_message_counts(
    bench: Bench, tmp_path: Path
) -> None:
    out = tmp_path / "patterns.json"
    bench("patterns", "--agents", "3", "--count", "2", "--json", str(out), timeout=160)
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
