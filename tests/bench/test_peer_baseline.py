"""The autogen-core baseline gets a virtualenv of its own, and says so plainly when it cannot.

The real build installs the pinned autogen-core from the package index (reachable here
and in CI) into the session's temp ``$RAYMESH_HOME`` and runs a small ring there. The
offline cases point pip at a port nothing listens on, with every pip configuration file
ignored, so they are really offline on any machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from benchmarks import peer
from mesh.cli import app
from mesh.errors import BaselineError


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip with no configuration files, no local wheels, and an index that refuses."""
    for name in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # pip then reads no config file
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")


def _quiet() -> Console:
    return Console(quiet=True)


@pytest.mark.usefixtures("offline")
def test_offline_install_fails_with_a_typed_error_and_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))

    with pytest.raises(BaselineError) as failed:
        peer.ensure(_quiet())

    assert f"pip install {peer.PIN}" in failed.value.message
    assert str(tmp_path / "peers" / "autogen-core") in failed.value.message
    assert failed.value.hint is not None
    assert "--no-peer" in failed.value.hint
    assert "bin/pip install" in failed.value.hint  # how to install it by hand


@pytest.mark.usefixtures("offline")
def test_a_changed_pin_rebuilds_the_virtualenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))
    old = peer.env_dir()
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "python").touch()
    (old / "raymesh-pin.txt").write_text("autogen-core==0.4.0\n")

    with pytest.raises(BaselineError):  # it tried to install the new pin: offline, it fails
        peer.ensure(_quiet())

    assert not (old / "raymesh-pin.txt").exists()  # no stale marker left to trust


@pytest.mark.usefixtures("offline")
def test_bench_offline_exits_with_the_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))

    result = CliRunner().invoke(app, ["bench", "topology", "--quick"])

    assert result.exit_code == 1
    assert "error:" in result.output
    assert "--no-peer" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_builds_its_virtualenv_and_runs_the_ring_there(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = peer.ensure(_quiet())  # the session's temp RAYMESH_HOME, the real index

    seconds, latencies, cpu = asyncio.run(
        baseline.ring(2, ask=False, count=50, window=16, payload_bytes=1024)
    )
    assert seconds > 0
    assert latencies == []  # tells have no reply to time
    assert cpu > 0
    seconds, latencies, cpu = asyncio.run(
        baseline.ring(2, ask=True, count=50, window=16, payload_bytes=1024)
    )
    assert seconds > 0
    assert len(latencies) == 100  # every ask of both senders answered
    assert all(lat > 0 for lat in latencies)

    # Built once: the next run reuses it, even with no package index at all.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert peer.ensure(_quiet()) == baseline
