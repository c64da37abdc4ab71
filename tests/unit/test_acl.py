"""Access rules in team files: validation names the file and field; decisions are exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh import AccessDeniedError, ConfigError
from mesh.control._team import load_team
from mesh.security._acl import AccessPolicy, compile_access

AGENT = "mesh.agent:Agent"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(text)
    return path


TEAM = """\
name: review
agents:
  - {name: lead, agent: mesh.agent:Agent, role: orchestrator}
  - {name: writer, agent: mesh.agent:Agent, role: writer}
  - {name: critic, agent: mesh.agent:Agent, role: writer}
teams:
  - name: archive
    agents:
      - {name: archivist, agent: mesh.agent:Agent}
"""


def test_every_agent_of_a_team_gets_its_rules_and_lone_agents_none(tmp_path: Path) -> None:
    team = load_team(_write(tmp_path, TEAM))
    access = {a.name: a.access for a in team.walk_agents()}
    assert set(access) == {"lead", "writer", "critic", "archivist"}
    for rules in access.values():
        assert rules is not None
        assert rules.members == {"lead", "writer", "critic", "archivist"}
    assert load_team(team).walk_agents().__next__().access == access["lead"]


def test_by_default_a_team_is_open_inside_and_closed_outside() -> None:
    roles = {"lead": "orchestrator", "writer": "writer", "archivist": None}
    access = compile_access(None, team="review", roles=roles, agent="writer")
    assert access.check("lead", "any.type/1") is None
    assert access.check("archivist", "any.type/1") is None  # a sub-team is the same file
    assert access.check("edge-1234abcd", "any.type/1", driver=True) is None
    # Driver rights come from the (signed) flag, never from the name.
    assert access.check("edge-1234abcd", "any.type/1") is not None
    assert access.check("anything", "any.type/1", driver=True) is None
    denied = access.check("stranger", "any.type/1", trace_id="t" * 32)
    assert isinstance(denied, AccessDeniedError)
    assert denied.agent == "writer"
    assert denied.trace_id == "t" * 32
    assert "'stranger' is not in team 'review'" in (denied.hint or "")


def test_rules_name_agents_roles_the_edge_and_types() -> None:
    policy = AccessPolicy.model_validate({
        "within": "closed",
        "edge": False,
        "allow": [
            {"from": ["role:orchestrator", "other-lead"], "to": ["role:writer"],
             "types": ["review.draft/1"]},
            {"from": ["edge"], "to": ["lead"]},
            {"from": ["*"], "to": ["*"], "types": ["raymesh.usage_query/1"]},
        ],
    })  # fmt: skip
    roles = {"lead": "orchestrator", "writer": "writer", "critic": "writer"}
    writer = compile_access(policy, team="review", roles=roles, agent="writer")
    lead = compile_access(policy, team="review", roles=roles, agent="lead")
    assert writer.check("lead", "review.draft/1") is None
    assert writer.check("other-lead", "review.draft/1") is None
    assert isinstance(writer.check("lead", "review.other/1"), AccessDeniedError)
    assert isinstance(writer.check("critic", "review.draft/1"), AccessDeniedError)  # closed
    assert isinstance(writer.check("edge-1", "review.draft/1", driver=True), AccessDeniedError)
    assert lead.check("edge-1", "anything/1", driver=True) is None
    assert isinstance(lead.check("edge-1", "anything/1"), AccessDeniedError)
    assert isinstance(lead.check("writer", "review.draft/1"), AccessDeniedError)
    assert writer.check("anyone", "raymesh.usage_query/1") is None


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("  allow: [{from: [lead], to: [nobody]}]",
         "access.allow[0].to: 'nobody' is not an agent of this team"),
        ("  allow: [{from: ['role:ghost'], to: [lead]}]",
         "access.allow[0].from: no agent of the team has role 'ghost'"),
        ("  allow: [{to: [lead]}]", "access.allow.0.from: Field required"),
        ("  within: ajar", "access.within: Input should be 'open' or 'closed'"),
        ("  alow: []", "access.alow: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_rules_name_the_file_and_the_field(tmp_path: Path, access: str, expected: str) -> None:
    path = _write(tmp_path, TEAM + "access:\n" + access + "\n")
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    text = str(caught.value)
    assert str(path) in text
    assert expected.replace("allow.0", "allow[0]") in text


def test_only_the_top_level_team_declares_access(tmp_path: Path) -> None:
    text = TEAM + "    access: {within: closed}\n"
    with pytest.raises(ConfigError, match="only the top-level team"):
        load_team(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("options: {api_key: sk-proj-abcdefghijklmnop1234}", "agents[0].options.api_key"),
        ("options: {token: Zk3jq9Lw0pX7vB2nM5cR8tY1uA4sD6fG}", "agents[0].options.token"),
        ("options: {headers: [ghp_abcdefghijklmnopqrstuvwx]}", "agents[0].options.headers[0]"),
    ],
)
def test_a_key_in_a_team_file_is_a_load_error_naming_the_field(
    tmp_path: Path, line: str, field: str
) -> None:
    text = f"name: t\nagents:\n  - name: a\n    agent: {AGENT}\n    {line}\n"
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    assert field in str(caught.value)
    assert "environment" in (caught.value.hint or "")
    assert "sk-proj" not in str(caught.value)


def test_placeholders_and_references_are_not_keys(tmp_path: Path) -> None:
    text = (f"name: t\nagents:\n  - name: a\n    agent: {AGENT}\n"
            "    options: {api_key: unused, base_url: 'http://localhost:11434/v1', "
            "token_limit: 4000, secret_name: OPENAI_API_KEY}\n")  # fmt: skip
    assert load_team(_write(tmp_path, text)).agents[0].options["api_key"] == "unused"
