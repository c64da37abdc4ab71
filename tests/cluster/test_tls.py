"""A real TLS cluster on this machine: `raymesh up --tls`, clients that join it, and those refused.

The head is started by the CLI in a subprocess with a temp RAYMESH_HOME; each client is
a subprocess of its own, since the TLS variables a driver joins with stay in its process
and a process joins one cluster only. The session's in-process Ray is a plain one: it
serves as the cluster a TLS-only client is refused by.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from mesh import ConfigError, Mesh, TlsError
from mesh.edge import prepare_driver
from mesh.ops._head import _alive  # the pid and start time the state file records
from mesh.security import ensure_certificates

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
REVIEW_TEAM = REPO / "examples" / "review_team.yaml"
#: A refused client must be told at once: Ray alone retries for about a minute.
REFUSED_WITHIN_S = 15.0


@dataclass
class Head:
    env: dict[str, str]
    home: Path
    state: dict[str, Any]
    up_output: str

    @property
    def address(self) -> str:
        return str(self.state["address"])


def run(
    args: list[str], *, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False
    )


def raymesh(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "mesh.cli", *args], env=env, timeout=timeout)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    home = tmp_path_factory.mktemp("raymesh-home")
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "COLUMNS"}}
    env |= {"RAYMESH_HOME": str(home)}
    env.pop("RAYMESH_TLS_DIR", None)
    state: dict[str, Any] = {}
    try:
        started = raymesh("up", "--tls", "--num-cpus", "2", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        state = json.loads((home / "cluster.json").read_text())
        yield Head(env=env, home=home, state=state, up_output=started.stdout)
    finally:
        raymesh("down", env=env)  # whatever happened, leave no Ray of ours behind
        if state:
            shutil.rmtree(state["temp_dir"], ignore_errors=True)


#: A client: joins with Mesh.connect (TLS found, or as the arguments say), spawns an agent,
#: asks it, and prints what it saw as JSON; a refusal prints the error's type and text.
CLIENT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    from mesh import Mesh, MeshError

    address, mode = sys.argv[1], sys.argv[2]
    tls = {"auto": None, "off": False, "on": True}.get(mode, Path(mode))
    started = time.monotonic()
    try:
        mesh = Mesh.connect(address, tls=tls, log_to_driver=False,
                            runtime_env={"env_vars": {"PYTHONPATH": sys.argv[3]}})
    except MeshError as exc:
        print(json.dumps({"error": type(exc).__name__, "text": str(exc),
                          "seconds": time.monotonic() - started}))
        sys.exit(0)

    async def main():
        from _agents import Echo, Ping, Pong
        try:
            await mesh.spawn(Echo, name="tls-echo", prefix="over tls: ")
            reply = await mesh.ask("tls-echo", Ping(text="hi"), timeout=60, expect=Pong)
            await mesh.stop("tls-echo")
        finally:
            await mesh.shutdown()
        return reply.text

    text = asyncio.run(main())
    print(json.dumps({"reply": text, "use_tls": os.environ.get("RAY_USE_TLS"),
                      "ca": os.environ.get("RAY_TLS_CA_CERT")}))
    """
)


def client(head: Head, mode: str = "auto", **env: str) -> dict[str, Any]:
    environment = {**head.env, "PYTHONPATH": str(TESTS), **env}
    done = run([sys.executable, "-c", CLIENT, head.address, mode, str(TESTS)],
               env=environment)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_up_says_tls_is_on_and_records_it(head: Head) -> None:
    ca = head.home / "tls" / "ca.crt"
    assert "TLS:" in head.up_output
    assert str(ca) in head.up_output
    assert head.state["tls"] is True
    assert head.state["tls_ca_cert"] == str(ca)


def test_the_certificates_are_for_their_owner_only(head: Head) -> None:
    directory = head.home / "tls"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["ca.crt", "ca.key", "node.crt", "node.key"]  # no temporary file left
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_gcs_port_speaks_tls_and_wants_a_client_certificate(head: Head) -> None:
    host, port = head.address.rsplit(":", 1)
    tls = head.home / "tls"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls / "ca.crt")  # the server's certificate verifies
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:  # fmt: skip
        assert conn.version() in {"TLSv1.2", "TLSv1.3"}
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        assert conn.recv(9) == b""  # no client certificate: the server hangs up


def test_an_agent_is_spawned_and_asked_through_mesh_connect(head: Head) -> None:
    seen = client(head)
    assert seen.get("reply") == "over tls: hi", seen
    assert seen["use_tls"] == "1"
    assert seen["ca"] == head.state["tls_ca_cert"]


def test_status_joins_the_tls_cluster(head: Head) -> None:
    done = raymesh("status", "--address", head.address, env=head.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert head.address in done.stdout


def test_a_submitted_job_runs_over_tls_and_its_trace_is_read_back(head: Head) -> None:
    done = raymesh("submit", str(REVIEW_TEAM), "--task", "raymesh", "--follow",
                   env=head.env, timeout=150)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "On raymesh:" in done.stdout
    assert "succeeded" in done.stderr
    trace_id = done.stdout.split("trace id: ", 1)[1].split()[0]
    shown = raymesh("trace", trace_id, "--json", "--address", head.address, env=head.env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    spans = json.loads(shown.stdout)
    assert len(spans) >= 5  # one per handled message: lead, researcher, writer, critic, ...
    assert {span["trace_id"] for span in spans} == {trace_id}
    assert "writer" in shown.stdout


def test_a_client_without_certificates_is_refused_at_once(head: Head, tmp_path: Path) -> None:
    seen = client(head, RAYMESH_HOME=str(tmp_path))  # a home with no tls/ in it
    assert seen.get("error") == "TlsError", seen
    assert "requires TLS" in seen["text"]
    assert "RAYMESH_TLS_DIR" in seen["text"]  # the hint
    assert seen["seconds"] < REFUSED_WITHIN_S


def test_a_client_of_another_ca_is_refused(head: Head, tmp_path: Path) -> None:
    other = ensure_certificates(tmp_path / "other")
    seen = client(head, RAYMESH_TLS_DIR=str(other.directory))
    assert seen.get("error") == "TlsError", seen
    assert "does not verify against this client's CA" in seen["text"]
    assert seen["seconds"] < REFUSED_WITHIN_S


def test_a_client_certificate_the_cluster_did_not_sign_is_refused(
    head: Head, tmp_path: Path
) -> None:
    # The cluster's CA, so the client trusts the server; a key of another CA, so the
    # server does not trust the client: the refusal is the server's.
    other = ensure_certificates(tmp_path / "other")
    mixed = tmp_path / "mixed"
    mixed.mkdir(mode=0o700)
    shutil.copy(head.home / "tls" / "ca.crt", mixed / "ca.crt")
    for name in ("node.crt", "node.key"):
        shutil.copy(other.directory / name, mixed / name)
    seen = client(head, str(mixed))
    assert seen.get("error") == "TlsError", seen
    assert "refused this client's TLS certificate" in seen["text"]
    assert seen["seconds"] < REFUSED_WITHIN_S


def test_a_client_told_not_to_use_tls_is_refused(head: Head) -> None:
    seen = client(head, "off")
    assert seen.get("error") == "TlsError", seen
    assert "speaks TLS" in seen["text"]


async def test_a_plain_cluster_refuses_a_client_that_requires_tls(
    mesh: Mesh, tmp_path: Path
) -> None:
    # The session's own Ray is plain; asking for TLS there must fail before ray.init.
    gcs = ray.get_runtime_context().gcs_address
    files = ensure_certificates(tmp_path / "tls")
    with pytest.raises(TlsError, match="does not speak TLS"):
        prepare_driver(gcs, tls=files.directory)
    assert os.environ.get("RAY_USE_TLS") is None  # nothing was turned on


async def test_local_tls_is_refused_once_this_process_runs_a_plain_ray(mesh: Mesh) -> None:
    # TLS is chosen when Ray starts: a second Mesh.local in this process would be plain.
    with pytest.raises(ConfigError, match="already runs a Ray"):
        Mesh.local(tls=True)
    assert os.environ.get("RAY_USE_TLS") is None


def test_down_stops_every_process_of_the_tls_head(head: Head) -> None:
    recorded = [(pid, ticks) for pid, ticks in head.state["processes"]]
    done = raymesh("down", env=head.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cluster down" in done.stdout
    deadline = time.monotonic() + 10
    while any(_alive(*p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in recorded if _alive(*p)]
    assert not (head.home / "cluster.json").exists()
