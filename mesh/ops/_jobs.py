"""Team runs as Ray jobs: submit, follow, list, stop, through the Jobs API.

The working directory and the team file travel in the job's runtime_env, and the
entrypoint is ``raymesh run`` joining the cluster the job runs in. Neither may carry a
secret: an ``--env`` that looks like one is refused, and so is a working directory with
key files in what would be uploaded (`key_files`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from mesh._compat import RAY_UPLOAD_LOGGER, job_client_versions
from mesh.edge import probe_port, use_token_auth
from mesh.errors import ClusterError, ClusterUnreachableError
from mesh.ops._head import dashboard_address
from mesh.ops._workdir import KEY_FILES, key_files
from mesh.security import env_secret_reason, redact, remember_secret


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
    probe_port(parsed.hostname, parsed.port or default_port, url)
    use_token_auth()
    from ray.job_submission import JobSubmissionClient

    # The SDK logs each upload and closed log stream at INFO; the CLI says what matters.
    for name in (
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        RAY_UPLOAD_LOGGER,
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
    mine, theirs = job_client_versions(client)
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
    excludes: Sequence[str] = (),
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
        excludes: Files and folders of the working directory not to upload (gitignore
            patterns; the runtime_env ``excludes``).
        timeout: Seconds the task may take.
        python: The interpreter on the cluster that has raymesh installed.

    Raises:
        ClusterError: The team file is missing, unreadable or outside the working
            directory, the secrets file's path is relative or inside the working
            directory, the upload would carry key files, or the cluster refused the job.
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
    refuse_key_files(root, excludes)
    runtime_env: dict[str, Any] = {"working_dir": str(root)}
    if excludes:
        runtime_env["excludes"] = list(excludes)
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


def refuse_key_files(root: Path, excludes: Sequence[str] = ()) -> None:
    """Refuse a working directory whose upload would carry key files (see `key_files`).

    Raises:
        ClusterError: Naming the files, and how to leave them out.
    """
    found = key_files(root, excludes)
    if not found:
        return
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    flags = " ".join(f"--exclude {shlex.quote(path)}" for path in found[:3])
    raise ClusterError(
        f"the working directory {root} holds key files that would be uploaded with the "
        f"job and stored in the cluster: {shown} (refused: {', '.join(KEY_FILES)})",
        hint=f"leave them out with {flags}{' ...' if len(found) > 3 else ''} (gitignore "
        "patterns), or list them in a .rayignore there; keep keys in the cluster's "
        "secrets file (`raymesh up --secrets-file`)",
    )


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
