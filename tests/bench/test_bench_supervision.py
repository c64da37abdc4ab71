"""The supervision suite: its kills are counted in its table, and a restart is waited for
within a bound.

Each kill makes the driver's asks meet a dead or missing agent: expected dead letters.
The suite runs as people run it (a subprocess from the checkout), in its quickest form.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import Bench

from benchmarks.supervision import _answered_anew, _incarnation
from benchmarks.watchdogs import Looper
from mesh import Mesh, MeshError

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


@pytest.mark.ray
async def test_a_restart_that_never_comes_fails_by_its_bound_naming_the_agent(mesh: Mesh) -> None:
    name = f"unkilled-{time.time_ns() % 10**9}"
    team = await mesh.team({"name": f"bench-{name}",
                            "agents": [{"name": name, "agent": Looper}]})  # fmt: skip
    try:
        alive = await _incarnation(mesh, name)
        assert alive is not None
        # Not killed: only the incarnation the wait must look past ever answers.
        with pytest.raises(MeshError, match="no new incarnation") as caught:
            await _answered_anew(mesh, name, alive, team, within_s=1.0)
        assert caught.value.agent == name
    finally:
        await team.stop()
