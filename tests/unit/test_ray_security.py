"""`raymesh up` binds to loopback, keeps token authentication on, and guards the token.

No cluster is started: the decisions are tested, and `ray start` is replaced by a
recorder that fails, so nothing runs on the shared machine's ports.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mesh import ConfigError
from mesh.cli import app
from mesh.errors import ClusterError
from mesh.ops._head import start_head
from mesh.ops._jobs import parse_env, submit_team
from mesh.security._ray_auth import bind_args, head_env, secure_token_file
from mesh.security._redaction import redact


def test_a_head_binds_to_loopback_unless_told_otherwise() -> None:
    assert bind_args("127.0.0.1") == ["--node-ip-address", "127.0.0.1",
                                      "--dashboard-host", "127.0.0.1"]  # fmt: skip
    assert bind_args("0.0.0.0") == ["--dashboard-host", "0.0.0.0"]


def test_token_authentication_stays_on_unless_a_developer_turns_it_off() -> None:
    assert head_env({}, host="127.0.0.1", dev=False)["RAY_AUTH_MODE"] == "token"
    assert head_env({"RAY_AUTH_MODE": "token"}, host="0.0.0.0", dev=False)["RAY_AUTH_MODE"] == (
        "token"
    )
    with pytest.raises(ConfigError, match="RAY_AUTH_MODE=disabled") as caught:
        head_env({"RAY_AUTH_MODE": "disabled"}, host="127.0.0.1", dev=False)
    assert "--dev" in (caught.value.hint or "")
    dev = head_env({"RAY_AUTH_MODE": "disabled"}, host="127.0.0.1", dev=True)
    assert dev["RAY_AUTH_MODE"] == "disabled"
    with pytest.raises(ConfigError, match=r"unauthenticated Ray on 0\.0\.0\.0"):
        head_env({"RAY_AUTH_MODE": "disabled"}, host="0.0.0.0", dev=True)


def test_the_token_file_is_made_readable_by_its_owner_only(tmp_path: Path) -> None:
    token = tmp_path / "auth_token"
    assert not secure_token_file(token)  # none yet: Ray writes it on first start
    token.write_text("t" * 64)
    token.chmod(0o644)
    assert secure_token_file(token)
    assert token.stat().st_mode & 0o777 == 0o600
    assert not secure_token_file(token)


@pytest.fixture
def no_ray_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace `ray start` with a recorder that fails; isolate the state and the token."""
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    calls: list[dict[str, Any]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append({"command": command, "env": kwargs["env"]})
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_up_starts_ray_on_loopback_with_token_auth_and_a_private_token(
    no_ray_start: list[dict[str, Any]], tmp_path: Path
) -> None:
    token = tmp_path / "auth_token"
    token.write_text("t" * 64)
    token.chmod(0o644)
    with pytest.raises(ClusterError, match="failed"):
        start_head()
    (call,) = no_ray_start
    command = " ".join(call["command"])
    assert "--node-ip-address 127.0.0.1" in command
    assert "--dashboard-host 127.0.0.1" in command
    assert call["env"]["RAY_AUTH_MODE"] == "token"
    assert token.stat().st_mode & 0o777 == 0o600


def test_up_with_auth_disabled_is_refused_before_anything_starts(
    no_ray_start: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    refused = CliRunner().invoke(app, ["up"])
    assert refused.exit_code != 0
    assert "refusing to start Ray with token authentication disabled" in refused.output
    exposed = CliRunner().invoke(app, ["up", "--dev", "--host", "0.0.0.0"])
    assert exposed.exit_code != 0
    assert "unauthenticated" in exposed.output
    assert no_ray_start == []
    CliRunner().invoke(app, ["up", "--dev"])
    assert no_ray_start[0]["env"]["RAY_AUTH_MODE"] == "disabled"


def test_values_passed_with_env_are_masked_in_what_submit_shows() -> None:
    variables = parse_env(["REGION", "PLAIN=some-long-value"], {"REGION": "eu-west-1"})
    assert variables == {"REGION": "eu-west-1", "PLAIN": "some-long-value"}
    assert redact("region eu-west-1 and some-long-value") == "region [redacted] and [redacted]"


@pytest.mark.parametrize(
    ("item", "environ"),
    [
        (["OPENAI_API_KEY"], {"OPENAI_API_KEY": "sk-not-in-any-log-1234"}),  # by its value
        (["HARMLESS=ghp_abcdefghijklmnop1234"], {}),  # a key's shape under any name
        (["DB_PASSWORD=hunter2"], {}),  # a secret's name, whatever it holds
        (["GITHUB_TOKEN"], {"GITHUB_TOKEN": "short"}),
        (["COPY"], {"COPY": "opaque-key-value-42"}),  # the value of a key of this environment
    ],
    ids=["key-value", "key-shape", "password-name", "token-name", "known-key"],
)
def test_an_env_that_looks_like_a_secret_is_refused_naming_the_variable_not_its_value(
    item: list[str], environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_SERVICE_API_KEY", "opaque-key-value-42")
    name = item[0].partition("=")[0]
    with pytest.raises(ClusterError) as refused:
        parse_env(item, environ)
    message = str(refused.value)
    assert name in message
    assert "runtime_env" in message
    assert "--secrets-file" in (refused.value.hint or "")
    for value in [*environ.values(), item[0].partition("=")[2]]:
        assert not value or value not in message


def test_a_secrets_file_path_passes_as_a_reference_and_nothing_else() -> None:
    variables = parse_env(["RAYMESH_SECRETS_FILE=/etc/raymesh/secrets-2026.env"], {})
    assert variables == {"RAYMESH_SECRETS_FILE": "/etc/raymesh/secrets-2026.env"}


def test_refused_env_from_the_cli_exits_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown-0123456789")
    team = tmp_path / "team.yaml"
    team.write_text("name: t\nagents: []\n")
    refused = CliRunner().invoke(
        app, ["submit", str(team), "--task", "x", "--env", "OPENAI_API_KEY"]
    )
    assert refused.exit_code == 1
    assert "OPENAI_API_KEY" in refused.output
    assert "sk-never-shown" not in refused.output


class _Jobs:
    """A Jobs API client that records what it was sent."""

    def __init__(self) -> None:
        self.sent: dict[str, Any] = {}

    def submit_job(self, **job: Any) -> str:
        self.sent = job
        return str(job["submission_id"])


def test_submit_sends_only_the_path_of_the_clusters_secrets_file(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("name: t\nagents: []\n")
    jobs = _Jobs()
    submit_team(jobs, team, "x", secrets_file="/etc/raymesh/secrets.env")
    assert jobs.sent["runtime_env"]["env_vars"] == {
        "RAYMESH_SECRETS_FILE": "/etc/raymesh/secrets.env"
    }
    with pytest.raises(ClusterError, match="absolute"):
        submit_team(jobs, team, "x", secrets_file="secrets.env")
    with pytest.raises(ClusterError, match="uploaded with the job"):
        submit_team(jobs, team, "x", secrets_file=str(tmp_path / "secrets.env"))


def test_submit_refuses_key_files_unless_excluded_and_sends_the_excludes(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text("name: t\nagents: []\n")
    (tmp_path / "prod.env").write_text("")  # not a dotenv name: uploaded
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-x")
    jobs = _Jobs()
    with pytest.raises(ClusterError) as refused:
        submit_team(jobs, tmp_path / "team.yaml", "x")
    assert "holds key files" in str(refused.value)
    assert "sk-x" not in str(refused.value)
    assert "--exclude .env" in (refused.value.hint or "")
    assert jobs.sent == {}  # nothing went to the cluster
    submit_team(jobs, tmp_path / "team.yaml", "x", excludes=[".env"])
    assert jobs.sent["runtime_env"]["excludes"] == [".env"]


def test_up_puts_the_secrets_files_keys_in_the_heads_environment(
    no_ray_start: list[dict[str, Any]], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("CLUSTER_API_KEY=opaque-cluster-key-1\n")
    secrets.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        start_head(secrets_file=secrets)
    assert no_ray_start == []  # refused before Ray started
    secrets.chmod(0o600)
    with pytest.raises(ClusterError, match="failed"):
        start_head(secrets_file=secrets)
    assert no_ray_start[0]["env"]["CLUSTER_API_KEY"] == "opaque-cluster-key-1"
    assert "opaque-cluster-key-1" not in " ".join(no_ray_start[0]["command"])
