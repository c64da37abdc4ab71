"""`Mesh.local()` and `raymesh run` start Ray under `up`'s rule, checked before Ray starts.

The refusals happen before ``ray.init``, so no Ray is started here; what Ray then does
with the guards (loopback, token mode, the token file) is in tests/cluster/test_loopback.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mesh import ConfigError
from mesh.cli import app
from mesh.security import guard_local_ray

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ray" / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    return path


def test_inherited_auth_disabled_is_refused_unless_dev(
    token: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(ConfigError, match=r"RAY_AUTH_MODE=disabled") as refused:
        guard_local_ray(dev=False)
    assert "--dev" in (refused.value.hint or "")
    guard_local_ray(dev=True)  # a developer's throwaway Ray: no token needed
    assert not token.exists()


def test_without_a_mode_token_auth_is_on_and_the_token_private(
    token: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    guard_local_ray(dev=False)
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_raymesh_run_refuses_auth_disabled_before_ray_starts(
    token: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    team = str(REPO / "examples" / "review_team.yaml")
    refused = CliRunner().invoke(app, ["run", team, "--task", "x"])
    assert refused.exit_code == 1
    assert "token authentication disabled" in refused.output
    assert "--dev" in refused.output
