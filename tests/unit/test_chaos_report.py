"""The chaos report: choosing scenarios, the table's lines, the JSON (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh.chaos import SCENARIOS, ChaosReport, OrderFigures
from mesh.chaos.report import select
from mesh.errors import ConfigError


def test_only_picks_scenarios_in_the_suites_order() -> None:
    picked = select(["hung", "conversation"])
    assert [s.name for s in picked] == ["conversation", "hung"]
    assert select(()) == list(SCENARIOS)


def test_an_unknown_scenario_is_named_and_the_choices_listed() -> None:
    with pytest.raises(ConfigError, match="'kaboom'") as caught:
        select(["order", "kaboom"])
    assert "conversation" in (caught.value.hint or "")


def test_a_missed_target_fails_the_report_and_reads_no_in_the_table(tmp_path: Path) -> None:
    clean = OrderFigures(messages=10, kills=1, incarnations=2, handled=9, errors={"X": 1})
    reordered = OrderFigures(messages=10, kills=1, incarnations=2, handled=10, reorders=1)
    assert ChaosReport(quick=True, results={"order": [clean]}).all_met()
    report = ChaosReport(quick=True, results={"order": [reordered]})
    assert not report.all_met()
    missed = [line for line in report.figures() if line.met is False]
    assert [line.figure for line in missed] == ["reorders within an incarnation"]

    report.write_json(tmp_path / "chaos.json")
    data = json.loads((tmp_path / "chaos.json").read_text())
    assert data["scenarios"]["order"][0]["reorders"] == 1
    assert {"scenario", "figure", "value", "target", "met"} <= set(data["figures"][0])
