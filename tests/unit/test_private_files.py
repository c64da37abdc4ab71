"""What raymesh writes is its user's alone: a 0700 home, 0600 files, atomic snapshots,
secrets files that cannot reach into Ray's environment, and the socket check `up` runs.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from actors.memory import SQLiteMemory
from mesh import ConfigError
from mesh.config import raymesh_home
from mesh.ops._listeners import exposed_listeners, listeners
from mesh.ops._traces import save_trace
from mesh.security import (
    open_private,
    prepare_token,
    private_dir,
    private_file,
    read_secrets_file,
    write_private,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_dir_is_made_0700_with_its_missing_parents(tmp_path: Path) -> None:
    deep = private_dir(tmp_path / "a" / "b" / "c")
    assert [_mode(p) for p in (deep, deep.parent, deep.parent.parent)] == [0o700] * 3


def test_a_looser_dir_of_ours_is_tightened_and_a_shared_one_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert _mode(private_dir(loose)) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: narrowing it would lock other users out
    with pytest.raises(ConfigError, match="shared directory"):
        private_dir(shared)
    assert _mode(shared) == 0o1777


def test_raymesh_home_is_created_0700_and_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("RAYMESH_HOME", str(home))
    assert raymesh_home() == home
    assert _mode(home) == 0o700
    home.chmod(0o755)
    raymesh_home()
    assert _mode(home) == 0o700


def test_write_private_replaces_atomically_with_mode_0600_and_leaves_no_temp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "state.json"
    write_private(path, "one")
    assert path.read_text() == "one"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    path.chmod(0o644)  # an older file, written before
    write_private(path, b"two")
    assert path.read_text() == "two"
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_write_private_keeping_existing_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "auth_token"
    write_private(path, "first", keep_existing=True)
    write_private(path, "second", keep_existing=True)  # another process was first
    assert path.read_text() == "first"
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["auth_token"]


def test_private_file_and_open_private_make_0600_files(tmp_path: Path) -> None:
    made = private_file(tmp_path / "db")
    assert made.read_bytes() == b""
    assert _mode(made) == 0o600
    old = tmp_path / "old.log"
    old.write_text("earlier run, longer than the next")
    old.chmod(0o644)
    with open_private(old) as out:
        out.write(b"now")
    assert old.read_text() == "now"
    assert _mode(old) == 0o600


def test_saved_traces_are_0600_in_a_0700_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path / "home"))
    path = save_trace([{"trace_id": "t1", "prompt": "private words"}])
    assert path is not None
    assert json.loads(path.read_text())[0]["prompt"] == "private words"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


async def test_a_memory_store_file_is_0600_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "stores" / "memory.db"
    store = SQLiteMemory(path, use_fts=False)
    try:
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
    finally:
        await store.close()


def test_prepare_token_writes_a_missing_token_0600_and_narrows_an_open_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ray" / "auth_token"
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
    prepare_token(env)
    token = path.read_text()
    assert len(token) == 64
    assert int(token, 16) >= 0
    assert _mode(path) == 0o600
    path.chmod(0o644)
    prepare_token(env)
    assert path.read_text() == token  # kept, only narrowed
    assert _mode(path) == 0o600
    other = tmp_path / "other"
    prepare_token({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN_PATH": str(other)})
    prepare_token({"RAY_AUTH_TOKEN": "x" * 64, "RAY_AUTH_TOKEN_PATH": str(other)})
    assert not other.exists()


@pytest.mark.parametrize(
    "name", ["RAY_AUTH_MODE", "RAY_ADDRESS", "PATH", "LD_PRELOAD", "PYTHONPATH", "pythonstartup"]
)
def test_a_secrets_file_cannot_set_ray_path_loader_or_python_variables(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"OPENAI_API_KEY=sk-fine-0123456789\n{name}=never-shown-value\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as refused:
        read_secrets_file(path)
    message = str(refused.value)
    assert name in message
    assert str(path) in message
    assert "line 2" in message
    assert "never-shown-value" not in message + (refused.value.hint or "")


def test_a_secrets_file_of_keys_only_is_read(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("OPENAI_API_KEY=sk-fine-0123456789\nRAYMESH_SECRET=s" + "x" * 20 + "\n")
    path.chmod(0o600)
    assert set(read_secrets_file(path)) == {"OPENAI_API_KEY", "RAYMESH_SECRET"}


def test_the_socket_check_tells_a_port_open_to_all_from_a_loopback_one() -> None:
    with socket.socket() as everywhere, socket.socket() as here:
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        here.bind(("127.0.0.1", 0))
        here.listen()
        ports = {s.port: s for s in listeners([os.getpid()])}
        open_port, local_port = everywhere.getsockname()[1], here.getsockname()[1]
        assert not ports[open_port].loopback
        assert ports[local_port].loopback
        exposed = {s.port for s in exposed_listeners([os.getpid()])}
        assert open_port in exposed
        assert local_port not in exposed
        assert "listens on 0.0.0.0 port" in str(ports[open_port])
