"""The overload benchmark runs end to end: the runner reports the chaos scenario's figures.

Run as a subprocess (`python -m benchmarks overload`), briefly. The scenario's guarantees
are asserted by its own test (tests/fault/test_backpressure.py); here, that the runner
wires it and every offered send is accounted for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(170)
def test_overload_accounts_for_every_send_under_both_policies(bench: Bench, tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    bench("overload", "--overload-s", "3", "--json", str(out), timeout=160)
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
