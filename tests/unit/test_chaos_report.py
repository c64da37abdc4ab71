"""The chaos report: choosing scenarios, the table's lines, the JSON (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.chaos import SCENARIOS, ChaosReport, OrderFigures, SecretsFigures, _sweep
from benchmarks.chaos._sweep import Place, sweep_files, sweep_texts
from benchmarks.chaos.report import select
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


def test_secrets_runs_last_so_it_sweeps_what_every_scenario_before_it_left() -> None:
    assert SCENARIOS[-1].name == "secrets"
    assert [s.name for s in select(["secrets", "injection"])] == ["injection", "secrets"]


def test_a_place_swept_empty_misses_its_target_even_without_hits(tmp_path: Path) -> None:
    swept = Place("Ray session logs", "files", items=3, size=100)
    empty = Place("dead letters of every agent", "letters")
    figures = SecretsFigures(canaries=2, places=[swept, empty], selfcheck_found=1)
    missed = [line.figure for line in figures.lines() if line.met is False]
    assert missed == ["hits in dead letters of every agent"]
    ChaosReport(quick=True, results={"secrets": [figures]}).write_json(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["scenarios"]["secrets"][0]["places"][0]["items"] == 3


def test_the_sweep_counts_hits_and_masks_and_finds_a_key_across_a_piece_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sweep, "_PIECE", 16)
    (tmp_path / "a.log").write_text("x" * 10 + "cnry-planted-key and [redacted]")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.log").write_text("nothing here")
    found = sweep_files(Place("files", "files"), tmp_path, ["cnry-planted-key"])
    assert (found.items, found.hits, found.masked, found.found) == (2, 1, 1, ["a.log"])
    texts = sweep_texts(Place("texts", "texts"), [("one", {"k": "cnry-planted-key"})],
                        ["cnry-planted-key"])  # fmt: skip
    assert texts.hits == 1
