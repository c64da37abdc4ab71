"""Every Ray that raymesh starts listens on loopback only, under token authentication.

Each entry runs for real in a subprocess: `Mesh.local()` with an agent spawned (so a
worker's port is open too), ``raymesh run`` of the example team (sampled while it
runs), and ``raymesh up``. The listening TCP sockets of every process the entry
started (its whole process tree, read with psutil) must all be on loopback, and none
of their ports may answer on this machine's other addresses. No component is an
exception: each one binds the node's address, and raymesh makes that 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mesh.ops._listeners import Listener, listeners

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


def _outside_addresses() -> list[str]:
    """This machine's addresses that other machines could reach (IPv4 and IPv6)."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                ip = address.address.split("%", 1)[0]
                if not ip.startswith(("127.", "fe80:")) and ip != "::1":
                    found.append(ip)
    return found


def _answers(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((ip, port)) == 0


def _assert_loopback_only(found: list[Listener]) -> None:
    exposed = [str(s) for s in found if not s.loopback]
    assert exposed == [], "listening beyond loopback:\n" + "\n".join(exposed)
    reachable = [
        f"{s.process} (pid {s.pid}) port {s.port} answers on {ip}"
        for s in found
        for ip in _outside_addresses()
        if _answers(ip, s.port)
    ]
    assert reachable == [], "\n".join(reachable)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # HOME in the temp dir too: nothing under the real ~/.ray is read or written.
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_AUTH_MODE"}}
    env |= {"HOME": str(tmp_path), "RAYMESH_HOME": str(tmp_path / "rm"),
            "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token" / "auth_token"),
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO / "tests")}  # fmt: skip
    return env | extra


#: A driver with a local mesh and one agent, which prints what the test checks and then
#: waits for its stdin to close.
_LOCAL = textwrap.dedent(
    """
    import asyncio, json, os, sys
    import ray
    from mesh import Mesh
    from _agents import Echo

    async def main():
        mesh = Mesh.local(num_cpus=1, log_to_driver=False)
        await mesh.spawn(Echo, name="echo")
        (node,) = ray.nodes()
        print(json.dumps({"metrics_port": node["MetricsExportPort"],
                          "auth": os.environ.get("RAY_AUTH_MODE")}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await mesh.shutdown()

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def local_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict, Path]]:
    tmp = tmp_path_factory.mktemp("local")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCAL],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(tmp), cwd=tmp,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"Mesh.local() failed:\n{proc.communicate(timeout=30)[1]}")
        yield proc.pid, json.loads(line), tmp
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_local_mesh_and_its_agents_listen_on_loopback_only(
    local_mesh: tuple[int, dict, Path],
) -> None:
    pid, _, _ = local_mesh
    found = listeners([pid])
    names = {s.process for s in found}
    # The GCS, the raylet and the agent's worker: the check saw the whole tree.
    assert {"gcs_server", "raylet"} <= names, found
    assert any(s.process.startswith("ray::") for s in found), found
    _assert_loopback_only(found)


def test_the_metrics_endpoint_of_a_local_ray_answers_on_loopback_and_nowhere_else(
    local_mesh: tuple[int, dict, Path],
) -> None:
    _, info, _ = local_mesh
    port = info["metrics_port"]
    assert _answers("127.0.0.1", port)
    outside = _outside_addresses()
    if not outside:
        pytest.skip("this machine has no address but loopback")
    assert [ip for ip in outside if _answers(ip, port)] == []


def test_a_local_ray_runs_with_token_auth_and_a_private_token_file(
    local_mesh: tuple[int, dict, Path],
) -> None:
    _, info, tmp = local_mesh
    assert info["auth"] == "token"
    token = tmp / "token" / "auth_token"
    assert len(token.read_text()) == 64
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert not (tmp / ".ray").exists()  # Ray wrote no token of its own


def test_a_local_mesh_refuses_inherited_auth_disabled(tmp_path: Path) -> None:
    env = _env(tmp_path, RAY_AUTH_MODE="disabled")
    code = "from mesh import Mesh; Mesh.local(num_cpus=1)"
    refused = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "ConfigError" in refused.stderr
    assert "RAY_AUTH_MODE=disabled" in refused.stderr
    assert "Started a local Ray" not in refused.stderr


def test_raymesh_run_listens_on_loopback_only_while_it_runs(tmp_path: Path) -> None:
    team = REPO / "examples" / "review_team.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh.cli", "run", str(team), "--task", "raymesh", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
    )  # fmt: skip
    seen: dict[tuple[int, str, int], Listener] = {}
    while proc.poll() is None:
        for found in listeners([proc.pid]):
            seen.setdefault((found.pid, found.address, found.port), found)
        time.sleep(0.2)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["team"] == "review"
    names = {s.process for s in seen.values()}
    assert {"gcs_server", "raylet"} <= names, names
    exposed = [str(s) for s in seen.values() if not s.loopback]
    assert exposed == [], "listening beyond loopback:\n" + "\n".join(exposed)
    traces = tmp_path / "rm" / "traces"
    assert stat.S_IMODE(traces.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in traces.iterdir()} == {0o600}


def test_raymesh_up_listens_on_loopback_only_and_keeps_its_files_private(tmp_path: Path) -> None:
    env = _env(tmp_path)
    home = tmp_path / "rm"

    def raymesh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mesh.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    state: dict = {}
    try:
        up = raymesh("up", "--num-cpus", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((home / "cluster.json").read_text())
        assert state["address"].startswith("127.0.0.1:")
        found = listeners(pid for pid, _ in state["processes"])
        names = {s.process for s in found}
        assert {"gcs_server", "raylet"} <= names, found
        assert any(s.port == int(state["dashboard_url"].rsplit(":", 1)[1]) for s in found)
        _assert_loopback_only(found)
        assert state["exposed"] == []
        assert "warning" not in up.stderr
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("cluster.json", "up.log"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE(Path(state["temp_dir"]).stat().st_mode) == 0o700
    finally:
        raymesh("down")
        if state:
            shutil.rmtree(state["temp_dir"], ignore_errors=True)
