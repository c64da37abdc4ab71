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

from mesh import ConfigError, cluster
from mesh._ray_security import bind_args, head_env, secure_token_file
from mesh.cli import app
from mesh.telemetry import redact


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

    monkeypatch.setattr(cluster.subprocess, "run", run)
    return calls


def test_up_starts_ray_on_loopback_with_token_auth_and_a_private_token(
    no_ray_start: list[dict[str, Any]], tmp_path: Path
) -> None:
    token = tmp_path / "auth_token"
    token.write_text("t" * 64)
    token.chmod(0o644)
    with pytest.raises(cluster.ClusterError, match="failed"):
        cluster.start_head()
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
    variables = cluster.parse_env(["OPENAI_API_KEY", "PLAIN=some-long-value"],
                                  {"OPENAI_API_KEY": "sk-not-in-any-log-1234"})  # fmt: skip
    assert variables == {"OPENAI_API_KEY": "sk-not-in-any-log-1234", "PLAIN": "some-long-value"}
    assert redact("key sk-not-in-any-log-1234 and some-long-value") == (
        "key [redacted] and [redacted]"
    )
