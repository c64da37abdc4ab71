"""`raymesh run` stopped with Ctrl-C stops its team in order and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TESTS = Path(__file__).parents[1]


@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_team_in_reverse_start_order(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    team = tmp_path / "team.yaml"
    team.write_text(
        "name: interrupted\nentry: first\nagents:\n"
        f"  - {{name: first, agent: '_agents:SlowLead', options: {{record: '{record}'}}}}\n"
        f"  - {{name: second, agent: '_agents:SlowLead', options: {{record: '{record}'}}}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    # The run inherits an ignored SIGINT (pytest started in the background by a script, as
    # CI may be, ignores it), and Python keeps it ignored: a user's Ctrl-C is never that.
    # A handler here is reset to the default in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "mesh.cli", "run", str(team), "--task", "take your time"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # its local Ray goes with it if the test must kill it
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 90
        while "working first" not in (record.read_text() if record.exists() else ""):
            assert run.poll() is None, run.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the team never started working"
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=150)
    finally:
        if run.poll() is None:
            # A run left behind would leave its Ray too, which later tests would join.
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, err[-2000:]
    assert "interrupted" in err
    lines = record.read_text().split("\n")
    assert [x for x in lines if x.startswith("stopped")] == ["stopped second", "stopped first"]
