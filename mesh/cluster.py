"""Clusters: a local Ray head that ``raymesh up`` starts and ``down`` stops, and Ray jobs.

``raymesh up`` runs ``ray start --head`` with its own temp dir under the raymesh home
(``$RAYMESH_HOME``, default ``~/.raymesh``), on free ports, with the dashboard (and so the
Jobs API) bound to 127.0.0.1, and records what it started in ``cluster.json`` there.
``down`` stops those processes and nothing else: ``ray stop`` would stop every Ray on the
machine. Team runs go to a cluster as Ray jobs (``submit``): the working directory and the
team file travel in the job's runtime_env, and the entrypoint is ``raymesh run`` joining
the cluster the job runs in.

Errors::

    MeshError
    └── ClusterError                 a head could not start or stop, a job could not be sent
        └── ClusterUnreachableError (+ConnectionError)  nothing answers at the address
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import yaml

from mesh._ray_security import LOOPBACK, bind_args, head_env, secure_token_file, token_path
from mesh.errors import MeshError
from mesh.secrets import env_secret_reason, read_secrets_file
from mesh.telemetry import redact, remember_secret

__all__ = [
    "ClusterError",
    "ClusterUnreachableError",
    "HeadState",
    "JobRow",
    "agent_rows",
    "dashboard_address",
    "follow_job",
    "gcs_address",
    "job_client",
    "job_logs",
    "job_status",
    "list_jobs",
    "live_head",
    "parse_env",
    "prepare_driver",
    "raymesh_home",
    "start_head",
    "stop_head",
    "stop_job",
    "submit_team",
    "trace_spans",
    "version_mismatch",
]

STATE_FILE = "cluster.json"
# Ray puts unix sockets at <temp dir>/session_<date>_<pid>/sockets/<name>, and a socket
# path may not pass 107 bytes: a longer temp dir makes Ray fail at start.
_MAX_TEMP_DIR = 40
_PROBE_S = 3.0


class ClusterError(MeshError):
    """A head could not start or stop, a job could not be submitted, or a job failed."""


class ClusterUnreachableError(ClusterError, ConnectionError):
    """Nothing answers at the cluster address given."""


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
    """

    address: str
    dashboard_url: str
    temp_dir: str
    processes: list[list[int]] = field(default_factory=list)
    num_cpus: int | None = None
    ray_version: str = ""
    started_at: float = 0.0

    @property
    def pids(self) -> list[int]:
        """The recorded process ids."""
        return [pid for pid, _ in self.processes]


def raymesh_home() -> Path:
    """Return raymesh's state dir: ``$RAYMESH_HOME`` or ``~/.raymesh``."""
    return Path(os.environ.get("RAYMESH_HOME") or Path.home() / ".raymesh").expanduser()


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


# -- processes (Linux /proc; elsewhere only the recorded pids are known) -------------


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


# -- the head ------------------------------------------------------------------------


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
    wanted = raymesh_home() / "ray"
    if len(str(wanted.resolve())) <= _MAX_TEMP_DIR:
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted.resolve()
    return Path(tempfile.mkdtemp(prefix="raymesh-"))


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
        env |= read_secrets_file(secrets_file)
    secure_token_file(token_path(env))
    free = iter(_free_ports(7))
    port = port or next(free)
    dashboard_port = dashboard_port or next(free)
    temp_dir = _temp_dir()
    command = [
        _ray_executable(), "start", "--head", "--disable-usage-stats",
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
    home = raymesh_home()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "up.log"
    with log.open("wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    secure_token_file(token_path(env))  # Ray writes it on first start
    address_file = temp_dir / "ray_current_cluster"
    if done.returncode != 0 or not address_file.exists():
        _stop_processes(_scan(str(temp_dir)))
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ClusterError(
            f"`ray start --head` failed (exit {done.returncode}):\n{tail}",
            hint=f"the whole output is in {log}; a port given with --port may be taken",
        )
    import ray

    address = address_file.read_text().strip()
    state = HeadState(
        address=address,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        temp_dir=str(temp_dir),
        processes=[[pid, ticks] for pid, ticks in _scan(str(temp_dir), address)],
        num_cpus=num_cpus,
        ray_version=ray.__version__,
        started_at=time.time(),
    )
    _state_path().write_text(json.dumps(asdict(state), indent=2))
    try:
        _wait_for_dashboard(state.dashboard_url, within=wait_s)
    except ClusterError:
        stop_head(state)
        raise
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
    Path(state.temp_dir, "ray_current_cluster").unlink(missing_ok=True)
    return sorted({pid for pid, _ in [*processes, *late]})


# -- addresses -----------------------------------------------------------------------


def _probe(host: str, port: int, shown: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return
    except OSError as exc:
        raise ClusterUnreachableError(
            f"nothing answers at {shown} ({exc.strerror or exc})",
            hint="check the address and that the cluster is up (`raymesh up` starts one)",
        ) from exc


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


def prepare_driver(address: str) -> None:
    """Get this process ready to join the cluster at `address` with ``ray.init``.

    Fails fast when nothing listens there (``ray.init`` would retry for a minute), and
    turns on Ray's token mode when a token is at hand.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: The address is not ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``.
    """
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise ClusterError(f"{address!r} is not HOST:PORT", hint="e.g. 10.0.0.5:6379")
        _probe(host or "127.0.0.1", int(port), address)
    _use_token_auth()
    if address != "auto" and not address.startswith("ray://"):
        _probe_gcs(address)


def _probe_gcs(address: str, within: float = _PROBE_S) -> None:
    # Something may accept TCP without being a GCS (a proxy, another server), and
    # ray.init then retries for 20 s: ask the GCS for its cluster id first.
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # not in its stub

    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["cluster_id"] = GcsClient(address=address).cluster_id
        except Exception as exc:  # Ray raises RpcError, RuntimeError, ...
            outcome["error"] = exc

    # A daemon thread: a GCS that never answers must not keep the process alive.
    thread = threading.Thread(target=ask, name="raymesh-gcs-probe", daemon=True)
    thread.start()
    thread.join(within)
    if "cluster_id" in outcome:
        return
    reason = f"{type(outcome['error']).__name__}: {outcome['error']}" if outcome else "no answer"
    raise ClusterUnreachableError(
        f"no Ray cluster answers at {address} ({reason})",
        hint="pass the GCS address of the head (`ray start --head --port`, 6379 by default)",
    )


def _use_token_auth() -> None:
    # Ray clients send the cluster's token only in token mode, and Ray leaves the mode
    # unset on clients: a client without it waits about 20 s, then fails to connect.
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(path).exists():
        os.environ["RAY_AUTH_MODE"] = "token"
        # Ray read its config when imported: make it read the mode again.
        from ray._raylet import Config  # type: ignore[attr-defined]  # not in its stub

        Config.initialize("")


# -- jobs ----------------------------------------------------------------------------


def job_client(address: str | None) -> Any:
    """Return a ``JobSubmissionClient`` for the Jobs API at `address` (see `dashboard_address`).

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: The address is not a Ray dashboard, or it refused us.
    """
    url = dashboard_address(address)
    parsed = urlparse(url)
    if parsed.hostname is None:
        raise ClusterError(f"{url!r} is not a URL", hint="use http://HEAD:8265")
    default_port = 443 if parsed.scheme == "https" else 8265
    _probe(parsed.hostname, parsed.port or default_port, url)
    _use_token_auth()
    from ray.job_submission import JobSubmissionClient

    # The SDK logs each upload and closed log stream at INFO; the CLI says what matters.
    for name in (
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        return JobSubmissionClient(url)
    except ConnectionError as exc:
        raise ClusterUnreachableError(
            f"the Ray Jobs API at {url} did not answer: {exc}",
            hint="is this the dashboard port (8265 by default)?",
        ) from exc
    except Exception as exc:  # Ray raises RuntimeError, AuthenticationError, ...
        raise ClusterError(
            f"the Ray Jobs API at {url} refused the connection: {type(exc).__name__}: {exc}",
            hint="for token authentication, set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH",
        ) from exc


def version_mismatch(client: Any) -> str | None:
    """Return a warning if the cluster runs another Ray version than this client."""
    mine = getattr(client, "_client_ray_version", None)
    theirs = getattr(client, "_server_ray_version", None)
    if mine and theirs and mine != theirs:
        return (
            f"this client has Ray {mine}, the cluster Ray {theirs}: "
            "install the same Ray version on both"
        )
    return None


def parse_env(pairs: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Turn ``K=V`` and ``K`` (value from `environ`) items into env vars for a job.

    A job's env vars are kept in its runtime_env, which Ray's dashboard, its Jobs API
    and ``ray job list`` show to whoever holds the cluster's token: no secret may go there.

    Raises:
        ClusterError: An item has no name, names a variable `environ` lacks, or looks
            like a secret (by its name or its value; the value is never shown).
    """
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not name:
            # Not the item itself: what follows its "=" may be a key.
            raise ClusterError("an --env item has no name", hint="use --env NAME=VALUE")
        if not sep:
            if name not in environ:
                raise ClusterError(
                    f"--env {name}: no such variable in this environment",
                    hint=f"export {name} first, or pass --env {name}=VALUE",
                )
            value = environ[name]
        if (reason := env_secret_reason(name, value)) is not None:
            raise ClusterError(
                f"--env {name}: refused, {reason}; a job's env vars are kept in its "
                "runtime_env, which the Ray dashboard and `ray job list` show",
                hint="keep keys on the cluster: start it with `raymesh up --secrets-file "
                "PATH`, or pass `raymesh submit --secrets-file PATH` (a 0600 file on the "
                "cluster's nodes)",
            )
        env[name] = value
        remember_secret(value)  # values are never shown: masked in the job's logs here
    return env


def submit_team(
    client: Any,
    team_file: Path,
    task: str,
    *,
    working_dir: Path | None = None,
    pip: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    secrets_file: str | None = None,
    timeout: float = 120.0,
    python: str = "python",
) -> str:
    """Submit a team run as a Ray job and return its submission id.

    The working directory (default: the team file's) is uploaded as the job's
    ``working_dir``; `env` goes only into the job's ``env_vars``, never onto its
    command line. Secrets go in neither: `secrets_file` names a file on the cluster,
    and only its path travels (as ``RAYMESH_SECRETS_FILE``).

    Args:
        client: From `job_client`.
        team_file: The team YAML; it must be inside the working directory.
        task: The task for the team's entry agent.
        working_dir: The directory to upload.
        pip: Packages the job installs (a runtime_env ``pip`` list).
        env: Environment variables for the job (from `parse_env`: no secrets).
        secrets_file: An absolute path, on the cluster's nodes, of a 0600 secrets
            file the job reads its keys from.
        timeout: Seconds the task may take.
        python: The interpreter on the cluster that has raymesh installed.

    Raises:
        ClusterError: The team file is missing, unreadable or outside the working
            directory, the secrets file's path is relative or inside the working
            directory, or the cluster refused the job.
    """
    if not team_file.is_file():
        raise ClusterError(f"team file {team_file} not found", hint="check the path")
    team_path = team_file.resolve()
    root = (working_dir or team_file.parent).resolve()
    if not root.is_dir():
        raise ClusterError(f"working directory {root} not found", hint="check --working-dir")
    try:
        relative = team_path.relative_to(root)
    except ValueError:
        raise ClusterError(
            f"team file {team_file} is not inside the working directory {root}, "
            "so the job would not have it",
            hint="pass --working-dir with a directory that holds the team file",
        ) from None
    try:
        spec = yaml.safe_load(team_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(f"team file {team_file} is not readable YAML: {exc}") from exc
    name = str(spec.get("name", team_file.stem)) if isinstance(spec, dict) else team_file.stem
    runtime_env: dict[str, Any] = {"working_dir": str(root)}
    env_vars = dict(env or {})
    if secrets_file is not None:
        env_vars["RAYMESH_SECRETS_FILE"] = _cluster_secrets_path(secrets_file, root)
    if env_vars:
        runtime_env["env_vars"] = env_vars
    if pip:
        runtime_env["pip"] = list(pip)
    entrypoint = shlex.join([
        python, "-m", "mesh.cli", "run", relative.as_posix(), "--task", task,
        "--address", "auto", "--timeout", f"{timeout:g}",
    ])  # fmt: skip
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]
    try:
        job_id: str = client.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            submission_id=f"raymesh-{safe}-{uuid.uuid4().hex[:8]}",
            metadata={"raymesh_team": name},
        )
    except Exception as exc:  # the SDK raises RuntimeError with the server's answer
        raise ClusterError(
            f"the cluster refused the job: {type(exc).__name__}: {exc}",
            hint="check --working-dir (at most 500 MiB) and --pip",
        ) from exc
    return job_id


def _cluster_secrets_path(path: str, root: Path) -> str:
    if not os.path.isabs(path):
        raise ClusterError(
            f"--secrets-file {path}: give an absolute path on the cluster's nodes",
            hint="a relative path would be read from the job's working directory",
        )
    if Path(path).resolve().is_relative_to(root):
        raise ClusterError(
            f"--secrets-file {path} is inside the working directory {root}, which is "
            "uploaded with the job: its keys would be stored in Ray",
            hint="keep the secrets file outside the directory you submit",
        )
    return path


def follow_job(
    client: Any, job_id: str, *, on_line: Callable[[str], None], wait_s: float = 30.0
) -> tuple[str, str]:
    """Stream a job's log lines to `on_line` until it ends; return (status, message).

    Raises:
        ClusterError: The job is unknown, or did not report an end after its logs ended.
    """

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            for line in chunk.splitlines():
                on_line(redact(line))

    try:
        asyncio.run(tail())
    except Exception as exc:
        raise ClusterError(f"cannot read the logs of job {job_id}: {exc}") from exc
    # The log stream closes when the job ends; its status follows shortly.
    deadline = time.monotonic() + wait_s
    while True:
        info = client.get_job_info(job_id)
        if info.status.is_terminal():
            return str(info.status), info.message or ""
        if time.monotonic() > deadline:
            raise ClusterError(
                f"job {job_id} still reports {info.status} after its logs ended",
                hint=f"check `raymesh jobs`, or `raymesh stop {job_id}`",
            )
        time.sleep(0.2)


def job_status(client: Any, job_id: str) -> tuple[str, str]:
    """Return a job's status and message.

    Raises:
        ClusterError: No job has that id.
    """
    try:
        info = client.get_job_info(job_id)
    except RuntimeError as exc:
        raise ClusterError(f"no job {job_id!r}: {exc}", hint="`raymesh jobs` lists them") from exc
    return str(info.status), info.message or ""


@dataclass(frozen=True)
class JobRow:
    """A job as ``raymesh jobs`` shows it (no runtime_env: it may hold secrets)."""

    job_id: str
    status: str
    entrypoint: str
    start_time: float | None
    end_time: float | None
    message: str


def list_jobs(client: Any) -> list[JobRow]:
    """Return the cluster's submitted jobs, oldest first."""
    rows = [
        JobRow(
            job_id=str(job.submission_id or job.job_id),
            status=str(job.status),
            entrypoint=job.entrypoint,
            start_time=job.start_time / 1000 if job.start_time else None,
            end_time=job.end_time / 1000 if job.end_time else None,
            message=job.message or "",
        )
        for job in client.list_jobs()
        if job.submission_id  # drivers that joined by ray.init are not jobs to show
    ]
    return sorted(rows, key=lambda row: row.start_time or 0.0)


def job_logs(client: Any, job_id: str) -> str:
    """Return a job's logs so far.

    Raises:
        ClusterError: No job has that id.
    """
    job_status(client, job_id)
    logs: str = client.get_job_logs(job_id)
    return redact(logs)


def stop_job(client: Any, job_id: str) -> bool:
    """Ask the cluster to stop a job; False if it had already ended.

    Raises:
        ClusterError: No job has that id.
    """
    job_status(client, job_id)
    return bool(client.stop_job(job_id))


# -- the mesh's agents -----------------------------------------------------------------


def agent_rows(address: str, *, namespace: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return a row per live agent of the namespace.

    Each row holds the registry entry (name, role, model, node, incarnation, health)
    and the host's counters (mailbox depth, messages handled, model tokens and cost).
    The registry is only read: a namespace without one has no agents, and none is created.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    import ray

    with _joined(address, namespace):
        entries = _registry_entries(namespace, timeout)
        nodes = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}  # type: ignore[no-untyped-call]
        return [_agent_row(info, handle, nodes, timeout) for info, handle in entries]


def trace_spans(
    address: str, *, namespace: str, trace_id: str | None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return one trace's spans from the mesh's span store.

    Args:
        trace_id: The conversation; the most recent one when None.

    Returns the spans in start order; none when the trace (or the span store) is unknown.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    import ray

    from mesh.spanstore import SPAN_STORE_NAME

    with _joined(address, namespace):
        try:
            store = ray.get_actor(SPAN_STORE_NAME, namespace=namespace)
        except ValueError:
            return []
        if trace_id is None:
            last = cast("str | None", ray.get(store.last_trace.remote(), timeout=timeout))
            if last is None:
                return []
            trace_id = last
        spans: list[dict[str, Any]] = ray.get(store.trace.remote(trace_id), timeout=timeout)
        return spans


@contextlib.contextmanager
def _joined(address: str, namespace: str) -> Iterator[None]:
    # A short-lived driver that only reads the mesh's actors; a process already in Ray
    # (a test, a notebook) reads through its own connection.
    prepare_driver(address)
    import ray

    owns = not ray.is_initialized()
    if owns:
        try:
            ray.init(
                address=address, namespace=namespace, log_to_driver=False,
                logging_level=logging.WARNING,
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"cannot join the Ray cluster at {address}: {exc}",
                hint="`raymesh version` and the dashboard show both Ray versions",
            ) from exc
    try:
        yield
    finally:
        if owns:
            ray.shutdown()


def dead_letter_rows(
    address: str, *, namespace: str, agent: str | None, limit: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Join the cluster at `address` and return the live agents' recent dead letters.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: Ray refused to join (e.g. another Ray version).
    """
    from mesh.deadletters import collect_dead_letters

    with _joined(address, namespace):
        hosts = [handle for _, handle in _registry_entries(namespace, timeout)]

        async def collect() -> list[dict[str, Any]]:
            async with asyncio.timeout(timeout):
                letters = await collect_dead_letters(hosts, agent=agent, limit=limit)
            return [letter.model_dump() for letter in letters]

        return asyncio.run(collect())


def _registry_entries(namespace: str, timeout: float) -> list[tuple[dict[str, Any], Any]]:
    # The registry is only read: a namespace without one has no agents, and none is made.
    import ray

    from mesh.registry import REGISTRY_NAME

    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=namespace)
    except ValueError:
        return []
    entries: list[tuple[dict[str, Any], Any]] = ray.get(
        registry.find.remote(None, None), timeout=timeout
    )
    return entries


def _agent_row(
    info: dict[str, Any], handle: Any, nodes: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    import ray

    row: dict[str, Any] = {
        "name": info["name"],
        "role": info.get("role"),
        "model": info.get("model"),
        "node": nodes.get(info["node_id"], info["node_id"][:12]),
        "incarnation": info["incarnation"],
        "healthy": info.get("healthy", True),
        "loop_lag_s": info.get("loop_lag_s", 0.0),
        "mailbox_depth": None,
        "handled": None,
        "tokens": None,
        "cost_usd": None,
        "reachable": True,
    }
    try:
        health = ray.get(handle.health.remote(), timeout=timeout)
        stats = ray.get(handle.stats.remote(), timeout=timeout)
    except (ray.exceptions.RayError, TimeoutError):
        row["reachable"] = False
        return row
    row.update(
        healthy=health["healthy"],
        loop_lag_s=health["loop_lag_s"],
        mailbox_depth=health["mailbox_depth"],
        handled=stats.get("handled"),
        received=stats.get("received"),
        failed=stats.get("failed"),
        tokens=sum(u.input_tokens + u.output_tokens for u in stats["models"].values()),
        cost_usd=sum(u.cost_usd for u in stats["models"].values()),
    )
    return row
