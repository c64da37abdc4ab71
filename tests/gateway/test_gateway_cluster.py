"""``raymesh serve --address`` on a cluster ``raymesh up`` started: deployed there, listed by
``raymesh status``, removed on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _served import TEAM, TOKENS, free_port, secrets_file

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]


def _raymesh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mesh.cli", *args], capture_output=True,
                          text=True, env=env, timeout=180, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("raymesh-home")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAYMESH_HOME": str(home)}
    state: dict[str, Any] = {}
    try:
        started = _raymesh("up", "--num-cpus", "2", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        state = json.loads((home / "cluster.json").read_text())
        yield str(state["address"]), env
    finally:
        _raymesh("down", env=env)
        if state:
            shutil.rmtree(state["temp_dir"], ignore_errors=True)


def _gateways(address: str, env: dict[str, str]) -> list[dict[str, Any]]:
    shown = _raymesh("status", "--address", address, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)["gateways"]
    return rows


def test_serve_deploys_on_the_cluster_and_status_shows_it(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = cluster
    port = free_port()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "mesh.cli", "serve", str(TEAM), "--address", address,
             "--port", str(port), "--secrets-file", str(secrets_file(tmp_path))],
            stdout=stdout, stderr=stderr, text=True, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while "Ctrl-C stops it" not in out.read_text():
                assert server.poll() is None, err.read_text()
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(1)
            base = f"http://127.0.0.1:{port}/v1"
            auth = {"Authorization": f"Bearer {TOKENS['alice']}"}
            chat = {"model": "assistant", "messages": [{"role": "user", "content": "on a head"}]}
            answer = httpx.post(f"{base}/chat/completions", json=chat, headers=auth, timeout=60)
            assert answer.status_code == 200, answer.text
            assert "on a head" in answer.json()["choices"][0]["message"]["content"]
            (row,) = _gateways(address, env)
            assert row["application"] == "raymesh-served"
            assert row["status"] == "RUNNING"
            assert row["replicas"] == 1
            assert row["route"] == "/"
            assert row["models"] == ["assistant", "sleeper"]
            table = _raymesh("status", "--address", address, env=env)
            assert "raymesh-served" in table.stdout
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
    assert code == 130, err.read_text()
    assert _gateways(address, env) == []  # the application was deleted with the team
