"""Two Ray nodes on this machine: spread agents, cross-node order, losing a node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_agents_spread_talk_across_nodes_in_order_and_survive_losing_a_node() -> None:
    scenario = Path(__file__).with_name("_scenario.py")
    done = subprocess.run([sys.executable, str(scenario)], capture_output=True, text=True,
                          timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["registry_on_head"] is True
    assert found["nodes_before"] == 2
    assert found["on_worker"]
    assert found["cross_node_in_order"] is True
    assert found["all_back"] is True
    assert found["none_on_removed_node"] is True
    assert found["all_answer"] is True
    for name in found["on_worker"]:
        assert found["restarts"][name] == 1
