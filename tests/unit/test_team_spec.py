"""Team files: valid ones load, invalid ones fail at load time naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh import ConfigError, TeamSpec, load_team
from mesh.control._team import AgentSpec

EXAMPLES = Path(__file__).parents[2] / "examples"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_team_loads_with_its_nested_team() -> None:
    spec = load_team(EXAMPLES / "review_team.yaml")
    assert spec.name == "review"
    assert spec.entry_agent() == "lead"
    assert [a.name for a in spec.walk_agents()] == [
        "lead", "researcher", "archivist", "critic", "writer"]  # fmt: skip
    assert [t.name for t in spec.walk_teams()] == ["writers"]
    assert spec.teams[0].strategy == "rest_for_one"
    assert spec.children() == [("lead", "permanent"), ("researcher", "permanent"),
                               ("writers", "permanent")]  # fmt: skip


def test_role_presets_resolve_through_entry_points() -> None:
    spec = AgentSpec(name="thinker", agent="reasoner", model="offline:default")
    assert spec.agent_class().__name__ == "Reasoner"


def test_a_bad_field_names_the_file_and_the_field_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: mesh.agent:Agent\n"
                            "    concurrency: 0\n")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    text = str(caught.value)
    assert str(path) in text
    assert "agents[0].concurrency" in text
    assert "greater than or equal to 1" in text


def test_an_unknown_role_is_an_error_at_load_time(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: wizard\n")
    with pytest.raises(ConfigError, match=r"agents\[0\]\.agent: unknown role preset 'wizard'"):
        load_team(path)


def test_an_unimportable_class_is_an_error_at_load_time(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: nowhere:Nothing\n")
    with pytest.raises(ConfigError, match="cannot import agent class 'nowhere:Nothing'"):
        load_team(path)


def test_a_class_that_is_not_an_agent_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: pathlib:Path\n")
    with pytest.raises(ConfigError, match="'pathlib:Path' is not an Agent subclass"):
        load_team(path)


def test_an_unknown_strategy_lists_the_valid_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nstrategy: all_for_one\n"
                            "agents:\n  - name: a\n    agent: mesh.agent:Agent\n")  # fmt: skip
    with pytest.raises(ConfigError, match="strategy: Input should be 'one_for_one'"):
        load_team(path)


def test_duplicate_agent_names_across_nested_teams_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: mesh.agent:Agent\n"
                            "teams:\n  - name: sub\n    agents:\n"
                            "      - name: a\n        agent: mesh.agent:Agent\n")  # fmt: skip
    with pytest.raises(ConfigError, match="the name 'a' is used twice"):
        load_team(path)


def test_unknown_keys_and_restart_types_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nagents:\n  - name: a\n    agent: mesh.agent:Agent\n"
                            "    restart: sometimes\n    colour: blue\n")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    assert "agents[0].restart: Input should be 'permanent', 'transient' or 'temporary'" in str(
        caught.value
    )
    assert "agents[0].colour: Extra inputs are not permitted" in str(caught.value)


def test_an_entry_that_is_not_an_agent_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "name: t\nentry: ghost\nagents:\n  - name: a\n    agent: mesh.agent:Agent\n"
    )
    with pytest.raises(ConfigError, match="entry 'ghost' is not an agent"):
        load_team(path)


def test_a_missing_file_and_bad_yaml_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read team file"):
        load_team(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_team(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="a team must be a mapping"):
        load_team(_write(tmp_path, "- just\n- a list\n"))


def test_an_empty_team_is_refused() -> None:
    with pytest.raises(ConfigError, match="has no agents and no teams"):
        load_team({"name": "empty"})


def test_a_spec_in_python_may_name_the_class_itself() -> None:
    from mesh import Agent

    class Local(Agent):
        pass

    spec = TeamSpec(name="t", agents=(AgentSpec(name="a", agent=Local),))
    assert spec.agents[0].agent_class() is Local
