"""The supervision suite's deliberate kills are counted in its table, not logged line by line.

Each kill makes the driver's asks meet a dead or missing agent: expected dead letters.
Run as people run it (a subprocess from the checkout), in its quickest form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Bench

_LOGGED = re.compile(r"\[\s*warning\s*\]\s+dead letter")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kills_are_counted_in_the_table_not_logged(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "supervision.json"
    done = bench("supervision", "--repeats", "3", "--json", str(out), timeout=170)

    assert not _LOGGED.search(done.stdout + done.stderr), done.stderr[-3000:]
    counted = json.loads(out.read_text())["supervision"]["dead_letters"]
    assert set(counted) <= {"peer_dead", "no_peer"}
    assert sum(counted.values()) >= 3  # at least one per kill
    shown = " ".join(done.stdout.split())  # the caption may wrap
    assert "dead letters from the kills (expected):" in shown
    for reason, n in counted.items():
        assert f"{reason} {n:,}" in shown
