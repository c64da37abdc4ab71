"""``raymesh serve`` as a user runs it: refusals before Ray starts, and a served team in a
subprocess on a free port, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _served import TEAM, TOKENS, free_port, secrets_file

RAYMESH = str(Path(sys.executable).with_name("raymesh"))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAYMESH, "serve", *args], capture_output=True, text=True,
                          timeout=120, env=env, check=False)  # fmt: skip


def test_serve_refuses_to_start_without_tokens() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAYMESH_SECRETS_FILE"}
    done = _run(str(TEAM), env=env)
    assert done.returncode == 1
    assert "no tokens" in done.stderr
    assert "--dev" in done.stderr
    assert "Started a local Ray" not in done.stderr  # refused before Ray starts


def test_serve_refuses_dev_beyond_loopback(tmp_path: Path) -> None:
    open_team = tmp_path / "open.yaml"
    open_team.write_text(TEAM.read_text().replace("serve:\n", "serve:\n  host: 0.0.0.0\n"))
    done = _run(str(open_team), "--dev")
    assert done.returncode == 1
    assert "not loopback" in done.stderr


def test_serve_refuses_a_secrets_file_others_can_read(tmp_path: Path) -> None:
    path = secrets_file(tmp_path)
    path.chmod(0o644)
    done = _run(str(TEAM), "--secrets-file", str(path))
    assert done.returncode == 1
    assert "chmod 600" in done.stderr


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_raymesh_serve_serves_the_team_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [RAYMESH, "serve", str(TEAM), "--port", str(port),
             "--secrets-file", str(secrets_file(tmp_path))],
            stdout=stdout, stderr=stderr, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while "Ctrl-C stops it" not in out.read_text():
                assert server.poll() is None, err.read_text()
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(1)
            assert f"http://127.0.0.1:{port}/v1" in out.read_text()
            base = f"http://127.0.0.1:{port}/v1"
            auth = {"Authorization": f"Bearer {TOKENS['alice']}"}
            models = httpx.get(f"{base}/models", headers=auth, timeout=60)
            assert models.status_code == 200
            assert [m["id"] for m in models.json()["data"]] == ["assistant", "sleeper"]
            chat = {"model": "assistant", "messages": [{"role": "user", "content": "hi there"}]}
            answer = httpx.post(f"{base}/chat/completions", json=chat, headers=auth, timeout=60)
            assert "hi there" in answer.json()["choices"][0]["message"]["content"]
            assert httpx.get(f"{base}/models", timeout=60).status_code == 401
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
    assert code == 130, err.read_text()
    assert "the gateway was removed and the team stopped" in err.read_text()
    for token in TOKENS.values():
        assert token not in out.read_text() + err.read_text()
    with pytest.raises(httpx.TransportError):  # nothing serves there any more
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
