"""The ``pattern:`` block of a team file is checked at load time, naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh import ConfigError
from mesh.control._patterns import PatternConductor
from mesh.control._team import load_team

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_a_pattern_adds_its_conductor_as_the_entry_agent() -> None:
    spec = load_team(EXAMPLES / "pipeline.yaml")
    assert spec.pattern is not None
    assert spec.pattern.name == "pipeline"
    assert spec.entry == "conductor"
    conductor = [a for a in spec.agents if a.name == "conductor"]
    assert [a.agent_class() for a in conductor] == [PatternConductor]


def test_a_stage_that_is_not_an_agent_of_the_team_fails_at_load_naming_file_and_field(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "pipeline.yaml").read_text().replace("[outliner, writer, editor]",
                                                            "[outliner, ghost]")  # fmt: skip
    bad.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_team(bad)
    assert str(bad) in caught.value.message
    assert "pattern.stages[1]: 'ghost' is not an agent of team 'pipeline'" in caught.value.message


def test_an_unknown_pattern_name_fails_at_load_listing_the_known_ones(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "pipeline.yaml")
        .read_text()
        .replace("name: pipeline\n  stages", "name: pipe\n  stages")
    )
    with pytest.raises(ConfigError) as caught:
        load_team(bad)
    assert str(bad) in caught.value.message
    assert "pattern: Input tag 'pipe'" in caught.value.message
    assert "'verify_retry'" in caught.value.message


def test_a_role_nobody_has_fails_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "hub.yaml").read_text().replace("[researcher, coder]", "[researcher, poet]")
    )
    with pytest.raises(ConfigError, match=r"pattern\.routes\[1\]: no agent of team 'hub' has "
                                          r"the role 'poet'"):  # fmt: skip
        load_team(bad)


def test_a_delegation_plan_with_a_cycle_fails_at_load_naming_the_cycle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "delegation.yaml").read_text()
    bad.write_text(text.replace('role: researcher}\n    - {id: options', 'role: researcher, '
                                'depends_on: [decide]}\n    - {id: options'))  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_team(bad)
    assert "pattern.delegation: subtasks: the plan's dependencies form a cycle" in str(caught.value)
    assert "needs -> decide -> needs" in str(caught.value)
