"""`Mesh.local()` and `raymesh run` start Ray under `up`'s rule, checked before Ray starts.

The refusals happen before ``ray.init``, so no Ray is started here; what Ray then does
with the guards (loopback, token mode, the token file) is in tests/cluster/test_loopback.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mesh import ConfigError
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


def test_raymesh_run_refuses_auth_disabled_before_ray_starts(token: Path) -> None:
    # A process of its own: in this one a Ray of the test session may already run, and
    # `raymesh run` would join it rather than start one.
    team = str(REPO / "examples" / "review_team.yaml")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    refused = subprocess.run(
        [sys.executable, "-m", "mesh.cli", "run", team, "--task", "x"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert "token authentication disabled" in output
    assert "--dev" in output
