"""A local Ray head: ``raymesh up`` starts it, ``down`` stops exactly it.

It runs ``ray start --head`` with its own temp dir under the raymesh home, on free
ports, with the dashboard (and so the Jobs API) bound to 127.0.0.1, and records what it
started in ``cluster.json`` there. ``down`` stops those processes and nothing else:
``ray stop`` would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mesh._compat import RAY_SYSTEM_CONFIG, current_cluster_file
from mesh.config import raymesh_home
from mesh.errors import ClusterError
from mesh.ops._listeners import exposed_listeners
from mesh.security import (
    DIR_MODE,
    LOOPBACK,
    bind_args,
    ensure_certificates,
    head_env,
    is_loopback,
    open_private,
    prepare_token,
    private_dir,
    read_secrets_file,
    secure_token_file,
    tls_directory,
    tls_enabled,
    token_path,
    write_private,
)

STATE_FILE = "cluster.json"


# Ray puts unix sockets at <temp dir>/session_<date>_<pid>/sockets/<name>, and a socket
# path may not pass 107 bytes: a longer temp dir makes Ray fail at start.
_MAX_TEMP_DIR = 40


@dataclass(frozen=True)
class HeadState:
    """What ``raymesh up`` started: enough to reach it and to stop exactly it.

    Attributes:
        address: The GCS address (``host:port``) drivers join with ``ray.init``.
        dashboard_url: The dashboard and Jobs API (``http://127.0.0.1:port``).
        temp_dir: The Ray temp dir given to ``ray start``; only this head uses it.
        processes: ``[pid, start ticks]`` of each process at start; the start time
            keeps a reused pid from being taken for ours.
        num_cpus: The CPUs the head offers.
        ray_version: The Ray that started it.
        started_at: Epoch seconds.
        exposed: The sockets of a head started on loopback that listen beyond it
            (none, unless Ray binds a port in a way raymesh does not know).
        tls: Ray's gRPC runs mutual TLS (``raymesh up --tls``).
        tls_ca_cert: The CA a client must trust, beside the node certificate and key
            it presents (the same directory).
    """

    address: str
    dashboard_url: str
    temp_dir: str
    processes: list[list[int]] = field(default_factory=list)
    num_cpus: int | None = None
    ray_version: str = ""
    started_at: float = 0.0
    exposed: list[str] = field(default_factory=list)
    tls: bool = False
    tls_ca_cert: str | None = None

    @property
    def pids(self) -> list[int]:
        """The recorded process ids."""
        return [pid for pid, _ in self.processes]


def _state_path() -> Path:
    return raymesh_home() / STATE_FILE


def _read_state() -> HeadState | None:
    path = _state_path()
    try:
        data = json.loads(path.read_text())
        return HeadState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ClusterError(
            f"the state file {path} is not readable: {exc}",
            hint="if no head of yours runs, delete the file",
        ) from exc


def live_head() -> HeadState | None:
    """Return the head ``raymesh up`` started if it still runs; drop a stale record."""
    state = _read_state()
    if state is None:
        return None
    if any(_alive(pid, ticks) for pid, ticks in state.processes) or _scan(
        state.temp_dir, state.address
    ):
        return state
    _state_path().unlink(missing_ok=True)
    return None


def _stat(pid: int) -> tuple[int, int] | None:
    """Return (parent pid, start ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait() is missing
        return None
    return int(fields[1]), int(fields[19])


def _alive(pid: int, ticks: int) -> bool:
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    found = _stat(pid)
    return found is not None and found[1] == ticks


def _scan(temp_dir: str, address: str | None = None) -> list[tuple[int, int]]:
    """Return (pid, start ticks) of the processes of the head using `temp_dir`.

    Ray's own processes name the temp dir or the head's GCS `address` on their
    command line; workers rename themselves (``ray::IDLE``), so they are found as
    descendants of those.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    roots: set[int] = set()
    needles = [re.compile(re.escape(temp_dir.encode()) + rb"(?![\w.-])")]
    if address:
        # A port must not match as the prefix of a longer one.
        needles.append(re.compile(re.escape(address.encode()) + rb"(?!\d)"))
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        found = _stat(pid)
        if found is None:
            continue
        parents[pid], ticks[pid] = found
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            if any(needle.search(cmdline) for needle in needles):
                roots.add(pid)
    roots.discard(os.getpid())
    ours = set(roots)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in ours} - ours
        grew = bool(children)
        ours |= children
    ours.discard(os.getpid())
    return sorted((pid, ticks[pid]) for pid in ours)


def _signal_all(processes: Iterable[tuple[int, int]], sig: signal.Signals) -> None:
    for pid, ticks in processes:
        if _alive(pid, ticks):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _wait_gone(processes: Sequence[tuple[int, int]], within: float) -> list[tuple[int, int]]:
    deadline = time.monotonic() + within
    left = [p for p in processes if _alive(*p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(*p)]
    return left


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen, so the ports differ from each other.
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def _temp_dir() -> Path:
    # Private either way: Ray's logs there hold what agents print, prompts included.
    wanted = raymesh_home() / "ray"
    if len(str(wanted.resolve())) <= _MAX_TEMP_DIR:
        return private_dir(wanted).resolve()
    return Path(tempfile.mkdtemp(prefix="raymesh-"))  # 0700


def _ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        raise ClusterError("the `ray` command was not found", hint="pip install 'ray[default]'")
    return found


def _cluster_env() -> dict[str, str]:
    # The head's PATH decides which `python` a job's entrypoint runs: put this
    # interpreter's environment first, so jobs find the Ray and raymesh installed here.
    env = dict(os.environ)
    here = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (here, env.get("PATH", "")) if p)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.pop("RAY_ADDRESS", None)
    return env


def start_head(
    *,
    port: int | None = None,
    dashboard_port: int | None = None,
    num_cpus: int | None = None,
    wait_s: float = 60.0,
    host: str = LOOPBACK,
    dev: bool = False,
    secrets_file: Path | None = None,
    tls: bool = False,
) -> HeadState:
    """Start a local Ray head with ``ray start --head`` and record it in the state file.

    With `secrets_file`, its keys are put in the head's environment, which every
    process Ray starts there inherits: jobs on this cluster find them as environment
    variables, and they never pass through Ray's job records.

    Args:
        port: The GCS port (default: a free one).
        dashboard_port: The dashboard / Jobs API port on 127.0.0.1 (default: a free one).
        num_cpus: CPUs to offer (default: Ray's count of this machine's).
        wait_s: Seconds to wait for the Jobs API to answer.
        host: The address the head binds to; anything but loopback exposes Ray's
            ports (see the README's security section).
        dev: Allow ``RAY_AUTH_MODE=disabled`` (on loopback only).
        secrets_file: A 0600 ``KEY=value`` file of keys for the cluster's jobs.
        tls: Run Ray's gRPC with mutual TLS, with a CA and node certificate made (or
            reused) under ``$RAYMESH_HOME/tls``; the head's environment, which its
            workers and jobs inherit, names them.

    Raises:
        ClusterError: A head started by ``raymesh up`` already runs, or Ray failed to
            start (the message holds the end of its output).
        ConfigError: The secrets file is missing, readable by others or malformed.
    """
    current = live_head()
    if current is not None:
        raise ClusterError(
            f"a cluster is already up at {current.address} (dashboard {current.dashboard_url})",
            hint="use it, or `raymesh down` first",
        )
    env = head_env(_cluster_env(), host=host, dev=dev)
    if secrets_file is not None:
        env |= read_secrets_file(secrets_file)  # which refuses RAY_*, PATH, LD_*, PYTHON*
    prepare_token(env)
    if tls:
        env |= ensure_certificates(tls_directory(raymesh_home(), env), hosts=[host]).env()
    free = iter(_free_ports(7))
    port = port or next(free)
    dashboard_port = dashboard_port or next(free)
    temp_dir = _temp_dir()
    command = [
        _ray_executable(), "start", "--head", "--disable-usage-stats",
        "--system-config", json.dumps(RAY_SYSTEM_CONFIG),
        "--port", str(port),
        "--include-dashboard", "true",
        *bind_args(host),
        "--dashboard-port", str(dashboard_port),
        # Ray's fixed defaults (10001, 52365) would clash with a second head.
        "--ray-client-server-port", str(next(free)),
        "--dashboard-agent-listen-port", str(next(free)),
        "--dashboard-agent-grpc-port", str(next(free)),
        "--runtime-env-agent-port", str(next(free)),
        "--metrics-export-port", str(next(free)),
        "--temp-dir", str(temp_dir),
    ]  # fmt: skip
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    log = raymesh_home() / "up.log"
    with open_private(log) as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    secure_token_file(token_path(env))  # in case Ray wrote one after all
    # Ray opens its temp dir to everyone as it starts (0777, for a /tmp/ray shared by
    # users); this one is the head's alone, and a driver joining later leaves it be.
    temp_dir.chmod(DIR_MODE)
    address_file = current_cluster_file(temp_dir)
    if done.returncode != 0 or not address_file.exists():
        _stop_processes(_scan(str(temp_dir)))
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ClusterError(
            f"`ray start --head` failed (exit {done.returncode}):\n{tail}",
            hint=f"the whole output is in {log}; a port given with --port may be taken",
        )
    import ray

    address = address_file.read_text().strip()
    processes = _scan(str(temp_dir), address)
    state = HeadState(
        address=address,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        temp_dir=str(temp_dir),
        processes=[[pid, ticks] for pid, ticks in processes],
        num_cpus=num_cpus,
        ray_version=ray.__version__,
        started_at=time.time(),
        # Also when the shell set Ray's TLS variables itself.
        tls=tls_enabled(env),
        tls_ca_cert=env.get("RAY_TLS_CA_CERT") if tls_enabled(env) else None,
    )
    write_private(_state_path(), json.dumps(asdict(state), indent=2))
    try:
        _wait_for_dashboard(state.dashboard_url, within=wait_s)
    except ClusterError:
        stop_head(state)
        raise
    if is_loopback(host):
        # Once the dashboard answers, its agents have bound their ports too.
        exposed = [str(s) for s in exposed_listeners(pid for pid, _ in processes)]
        state = replace(state, exposed=exposed)
        write_private(_state_path(), json.dumps(asdict(state), indent=2))
    return state


def _wait_for_dashboard(url: str, *, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (401 under token authentication)
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the dashboard at {url} did not answer within {within:.0f} s",
                hint=f"see the logs under {raymesh_home()}",
            )
        time.sleep(0.2)


def _stop_processes(processes: Sequence[tuple[int, int]], grace_s: float = 10.0) -> None:
    _signal_all(processes, signal.SIGTERM)
    left = _wait_gone(processes, grace_s)
    if left:
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, 5.0)


def stop_head(state: HeadState | None = None, *, grace_s: float = 10.0) -> list[int]:
    """Stop the head ``raymesh up`` started (only its processes) and drop its record.

    Args:
        state: The head to stop (default: the one in the state file).
        grace_s: Seconds between SIGTERM and SIGKILL.

    Returns:
        The pids that were stopped (empty if there was nothing to stop).

    Raises:
        ClusterError: A process of the head could not be stopped.
    """
    state = state or _read_state()
    if state is None:
        return []
    recorded = [(pid, ticks) for pid, ticks in state.processes]
    processes = sorted(set(recorded) | set(_scan(state.temp_dir, state.address)))
    _stop_processes(processes, grace_s)
    # Workers and job drivers started while we waited are found by a second look.
    late = _scan(state.temp_dir, state.address)
    _stop_processes(late, grace_s=2.0)
    left = [pid for pid, ticks in [*processes, *late] if _alive(pid, ticks)]
    if left:
        raise ClusterError(
            f"processes {left} of the head at {state.address} did not stop",
            hint="kill them by pid",
        )
    _state_path().unlink(missing_ok=True)
    current_cluster_file(Path(state.temp_dir)).unlink(missing_ok=True)
    return sorted({pid for pid, _ in [*processes, *late]})


def dashboard_address(address: str | None) -> str:
    """Return the Jobs API URL to use: `address`, ``$RAY_ADDRESS`` or the head from ``up``.

    Raises:
        ClusterError: No address was given and none is known.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        state = live_head()
        if state is None:
            raise ClusterError(
                "no cluster address given, and no cluster is up",
                hint="pass --address http://HEAD:8265, set RAY_ADDRESS, or run `raymesh up`",
            )
        return state.dashboard_url
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


def gcs_address(address: str | None) -> str:
    """Return the address a driver joins: `address`, ``$RAY_ADDRESS`` or the head from ``up``.

    A dashboard URL of the head from ``up`` is taken as that head's GCS address.

    Raises:
        ClusterError: No address was given and none is known, or a dashboard URL of
            another cluster was given.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    state = live_head()
    if address is None:
        if state is None:
            raise ClusterError(
                "no cluster address given, and no cluster is up",
                hint="pass --address HOST:6379, set RAY_ADDRESS, or run `raymesh up`",
            )
        return state.address
    if address.startswith(("http://", "https://")):
        if state is not None and address.rstrip("/") == state.dashboard_url:
            return state.address
        raise ClusterError(
            f"{address} is a dashboard URL; a driver joins the cluster's GCS address",
            hint="pass --address HOST:PORT (the `ray start --head --port`, 6379 by default)",
        )
    return address
