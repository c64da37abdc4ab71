"""The cluster commands end to end: `raymesh up`, submit, jobs, logs, stop, status, down.

These tests start their own Ray head with `raymesh up` (free ports, a temp
RAYMESH_HOME) and drive the CLI in subprocesses, so they do not use the session
`mesh` fixture: that one runs an in-process Ray of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _ports import free_port

from benchmarks.chaos._sweep import Place, sweep_files
from mesh.security._secrets import env_secret_reason

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(150)]

REPO = Path(__file__).resolve().parents[2]
REVIEW_TEAM = REPO / "examples" / "review_team.yaml"
SECRET = "sk-test-0123456789-never-shown"
#: A key `raymesh up --secrets-file` gives the head: opaque, so no pattern can mask it,
#: only knowing it. The test process never holds it.
CLUSTER_KEY = "CLUSTER_CANARY_API_KEY"
CLUSTER_CANARY = "cnry" + os.urandom(10).hex()


@dataclass
class Head:
    env: dict[str, str]
    state: dict[str, Any]
    up_output: str

    @property
    def dashboard(self) -> str:
        return str(self.state["dashboard_url"])


def raymesh(
    *args: str, env: dict[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def _eventually(check: Callable[[], Any], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.5)


def _alive(pid: int, ticks: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0] != "Z" and int(fields[19]) == ticks


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    home = tmp_path_factory.mktemp("raymesh-home")
    # No COLUMNS: what the CLI and the jobs print must read whole without a terminal.
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "COLUMNS"}}
    env |= {"RAYMESH_HOME": str(home), "API_KEY": SECRET}
    secrets = home / "cluster-secrets.env"
    secrets.write_text(f"{CLUSTER_KEY}={CLUSTER_CANARY}\n")
    secrets.chmod(0o600)
    state: dict[str, Any] = {}
    try:
        started = raymesh("up", "--num-cpus", "2", "--secrets-file", str(secrets), env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        state = json.loads((home / "cluster.json").read_text())
        yield Head(env=env, state=state, up_output=started.stdout)
    finally:
        # Whatever happened, leave no Ray of ours behind.
        raymesh("down", env=env)
        if state:
            # The temp path is too long for Ray's sockets, so the head used one in /tmp.
            shutil.rmtree(state["temp_dir"], ignore_errors=True)


def test_up_prints_the_address_the_dashboard_and_the_next_commands(head: Head) -> None:
    assert head.state["address"] in head.up_output
    assert head.dashboard in head.up_output
    assert head.dashboard.startswith("http://127.0.0.1:")
    assert "raymesh submit" in head.up_output
    assert "raymesh down" in head.up_output


def test_the_head_runs_with_raymeshs_system_config(head: Head) -> None:
    joined = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from mesh import Mesh
            from mesh._compat import system_config_problem
            Mesh.connect({head.state["address"]!r})  # a driver joining, as `submit` does
            print("problem:", system_config_problem())
        """)],
        capture_output=True, text=True, env=head.env, cwd=REPO, timeout=90, check=False,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    assert "problem: None" in joined.stdout


def test_up_twice_says_the_cluster_is_already_up_and_where(head: Head) -> None:
    again = raymesh("up", env=head.env)
    assert again.returncode == 0
    assert "already up" in again.stdout
    assert head.dashboard in again.stdout


def test_submitted_team_succeeds_and_its_output_holds_the_answer(head: Head) -> None:
    done = raymesh(
        "submit", "--address", head.dashboard, str(REVIEW_TEAM), "--task", "raymesh",
        "--env", "REVIEW_MODE=strict", "--follow",
        env=head.env,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "On raymesh:" in done.stdout
    assert "succeeded" in done.stderr
    assert "review/writers" in done.stdout  # the job's team table, not cut to 80 columns
    assert "researcher" in done.stdout
    assert "…" not in done.stdout
    assert SECRET not in output

    job_id = done.stdout.split("job ", 1)[1].split()[0]
    listed = raymesh("jobs", "--json", env=head.env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["job_id"]: row for row in json.loads(listed.stdout)}
    assert rows[job_id]["status"] == "SUCCEEDED"
    table = raymesh("jobs", env=head.env)
    assert job_id in table.stdout
    logs = raymesh("logs", job_id, env=head.env)
    assert "On raymesh:" in logs.stdout
    assert SECRET not in logs.stdout + table.stdout + listed.stdout


KEY_TEAM = """
from mesh import Agent, Context, handler
from mesh.security._secrets import get_secret
from mesh.observability._logging import get_logger
from protocols import Result, Task


class KeyUser(Agent):
    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        found = {name: get_secret(name) for name in msg.text.split()}
        for name, key in found.items():
            get_logger().warning("calling the backend", name=name, key=key)
        return Result(text=" ".join(f"{n}:{'found' if k else 'missing'}" for n, k in found.items()))
"""
#: What the Jobs API holds about a job, read by a client of its own.
JOB_RECORD = """
import json, sys
from mesh.ops import job_client
client = job_client(sys.argv[1])
info = client.get_job_info(sys.argv[2])
print(json.dumps({"runtime_env": info.runtime_env, "logs": client.get_job_logs(sys.argv[2])}))
"""


def test_a_job_uses_keys_kept_on_the_cluster_and_no_output_or_runtime_env_holds_them(
    head: Head, tmp_path: Path
) -> None:
    # One key is in the head's environment (`up --secrets-file`), the other in a 0600
    # file on the cluster's node that only `submit --secrets-file` names.
    job_canary = "cnry" + os.urandom(10).hex()
    secrets = tmp_path / "job-secrets.env"
    secrets.write_text(f"JOB_API_KEY={job_canary}\n")
    secrets.chmod(0o600)
    team_dir = tmp_path / "team"
    team_dir.mkdir()
    (team_dir / "key_team.py").write_text(KEY_TEAM)
    (team_dir / "team.yaml").write_text(
        "name: keys\nagents:\n  - {name: user, agent: 'key_team:KeyUser'}\n"
    )
    done = raymesh(
        "submit", "--address", head.dashboard, str(team_dir / "team.yaml"),
        "--task", f"{CLUSTER_KEY} JOB_API_KEY", "--secrets-file", str(secrets), "--follow",
        env=head.env,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"{CLUSTER_KEY}:found JOB_API_KEY:found" in done.stdout
    job_id = done.stdout.split("job ", 1)[1].split()[0]
    shown = raymesh("logs", job_id, env=head.env)
    read = subprocess.run([sys.executable, "-c", JOB_RECORD, head.dashboard, job_id],
                          capture_output=True, text=True, env=head.env, timeout=60,
                          check=True)  # fmt: skip
    record = json.loads(read.stdout)
    env_vars = record["runtime_env"].get("env_vars", {})
    assert env_vars == {"RAYMESH_SECRETS_FILE": str(secrets)}
    assert [name for name, value in env_vars.items() if env_secret_reason(name, value)] == []
    session = sweep_files(Place("the head's session logs", "files"),
                          Path(head.state["temp_dir"]) / "session_latest" / "logs",
                          [CLUSTER_CANARY, job_canary])  # fmt: skip
    for canary in (CLUSTER_CANARY, job_canary):
        assert canary not in output + shown.stdout + read.stdout
    assert session.items > 0
    assert session.hits == 0, session.found
    assert session.masked >= 2  # the agent did log both keys, masked


def test_an_env_that_looks_like_a_secret_is_refused_before_anything_is_sent(head: Head) -> None:
    done = raymesh("submit", str(REVIEW_TEAM), "--task", "x", "--env", "API_KEY", env=head.env)
    assert done.returncode == 1
    assert "--env API_KEY: refused" in done.stderr
    assert "--secrets-file" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_status_shows_the_agents_of_a_running_team(head: Head, tmp_path: Path) -> None:
    (tmp_path / "waiting_team.py").write_text(
        textwrap.dedent('''
            import asyncio

            from mesh import Agent, Context, handler
            from protocols import Result, Task


            class Waiter(Agent):
                @handler
                async def on_task(self, msg: Task, ctx: Context) -> Result:
                    await asyncio.Event().wait()  # until the job is stopped
                    return Result(text="never")
        ''')
    )  # fmt: skip
    (tmp_path / "team.yaml").write_text(
        textwrap.dedent("""
            name: waiting
            entry: waiter
            agents:
              - {name: waiter, agent: "waiting_team:Waiter", role: planner, model: "offline:echo"}
              - {name: helper, agent: "waiting_team:Waiter", role: helper}
        """)
    )
    sent = raymesh("submit", str(tmp_path / "team.yaml"), "--task", "wait", env=head.env)
    assert sent.returncode == 0, sent.stderr
    job_id = sent.stdout.split("job ", 1)[1].split()[0]
    try:

        def agents() -> dict[str, dict[str, Any]]:
            shown = raymesh("status", "--json", env=head.env)
            assert shown.returncode == 0, shown.stderr
            rows = {row["name"]: row for row in json.loads(shown.stdout)["agents"]}
            waiter = rows.get("waiter")
            # Received is counted when the task is taken from the mailbox.
            return rows if waiter and waiter.get("received") else {}

        rows = _eventually(agents, within=60, what="the team's agents in `raymesh status`")
        assert set(rows) == {"waiter", "helper"}
        assert rows["waiter"]["role"] == "planner"
        assert rows["waiter"]["model"] == "offline:echo"
        assert rows["waiter"]["healthy"] is True
        assert rows["waiter"]["mailbox_depth"] == 0
        assert rows["waiter"]["handled"] == 0  # still handling the task
        table = raymesh("status", env=head.env)
        assert "waiter" in table.stdout
        assert "planner" in table.stdout
    finally:
        stopped = raymesh("stop", job_id, env=head.env)
    assert stopped.returncode == 0, stopped.stderr

    def ended() -> bool:
        rows = json.loads(raymesh("jobs", "--json", env=head.env).stdout)
        return any(r["job_id"] == job_id and r["status"] == "STOPPED" for r in rows)

    _eventually(ended, within=30, what="the stopped job's status")


def test_failing_job_exits_non_zero_and_shows_its_last_log_lines(
    head: Head, tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_text(
        "name: broken\nagents:\n  - {name: ghost, agent: 'no_such_module:Ghost'}\n"
    )
    done = raymesh("submit", str(tmp_path / "broken.yaml"), "--task", "x", "--follow", env=head.env)
    assert done.returncode == 1
    assert "failed" in done.stderr
    assert "last log lines" in done.stderr
    assert "no_such_module" in done.stderr


def test_team_file_outside_the_working_directory_is_refused(head: Head, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    done = raymesh(
        "submit", str(REVIEW_TEAM), "--task", "x", "--working-dir", str(tmp_path / "elsewhere"),
        env=head.env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "not inside the working directory" in done.stderr


def test_env_without_a_value_in_this_environment_is_refused(head: Head) -> None:
    done = raymesh("submit", str(REVIEW_TEAM), "--task", "x", "--env", "NOT_SET_HERE_42",
                   env=head.env)  # fmt: skip
    assert done.returncode == 1
    assert "NOT_SET_HERE_42" in done.stderr


@pytest.mark.parametrize(
    "command",
    [["jobs", "--address", "http://127.0.0.1:{port}"], ["status", "--address", "127.0.0.1:{port}"]],
)
def test_unreachable_address_fails_fast_naming_the_address(
    command: list[str], tmp_path: Path
) -> None:
    port = free_port()
    args = [part.format(port=port) for part in command]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"RAYMESH_HOME": str(tmp_path), "COLUMNS": "200"}
    began = time.monotonic()
    done = raymesh(*args, env=env, timeout=30)
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr
    assert "nothing answers" in done.stderr
    assert time.monotonic() - began < 10


def test_down_stops_every_process_up_started(head: Head) -> None:
    recorded = [(pid, ticks) for pid, ticks in head.state["processes"]]
    assert recorded
    done = raymesh("down", env=head.env)
    assert done.returncode == 0, done.stderr
    assert "cluster down" in done.stdout
    assert [pid for pid, ticks in recorded if _alive(pid, ticks)] == []
    assert not (Path(head.env["RAYMESH_HOME"]) / "cluster.json").exists()
    again = raymesh("down", env=head.env)
    assert "no cluster is up" in again.stdout
