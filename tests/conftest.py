"""One real local Ray for the whole test session (started on first use), per-test cleanup,
and the benchmark CLI as `raymesh bench` runs it (`bench`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh import Agent, AgentInfo, Mesh, MeshConfig, MeshError

_names = itertools.count()

#: What the shell running the suite may set that would change what it checks: raymesh's
#: own settings, the providers' keys and endpoints, where Ray and OpenTelemetry connect,
#: Ray's TLS, and anything named like a secret (redaction treats those as keys to mask).
_AMBIENT = re.compile(
    r"^(RAYMESH_|OPENAI_|ANTHROPIC_|OTEL_|RAY_ADDRESS$|RAY_AUTH_|RAY_USE_TLS$|RAY_TLS_)"
    r"|(_API_KEY|_TOKEN|_SECRET)$"
)

Spawn = Callable[..., Awaitable[AgentInfo]]
#: Runs ``python -m benchmarks ARGS`` to success within `timeout` seconds; returns the run.
Bench = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _clean_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run the suite as on a fresh machine, whatever the shell around it has set.

    Ray's token and raymesh's home go to a fresh directory, so nothing under the real home
    directory is read, chmod-ed or rewritten.
    """
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if _AMBIENT.search(name)]:
            patch.delenv(name)
        patch.setenv("RAYMESH_HOME", str(home / "raymesh"))
        token = home / "ray" / "auth_token"
        # Ray makes a missing token only at ~/.ray: at a path of one's own it must exist.
        token.parent.mkdir()
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
        patch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
        # Ray runs its workers at nice 15, below every driver. The suite runs several
        # local Rays side by side (xdist processes, benchmark subprocesses), and a busy
        # driver of one starved another's workers: a new agent's imports took minutes on
        # two cores. At nice 0 the processes share the CPU as the machine's users would.
        patch.setenv("RAY_worker_niceness", "0")
        # Every agent is a process of its own that imports raymesh from this checkout: a
        # shell that forbids bytecode caches made each one compile it from source again,
        # a quarter of the CPU of starting an agent (0.97-1.07 s against 0.70-0.78 s).
        patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        yield


@pytest.fixture(scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    # Ray workers import the test agents (tests/_agents.py) and the examples' agents
    # (examples/review_team.py) by module name, as they would a user's package.
    here = Path(__file__).parent
    path = os.pathsep.join((str(here), str(here.parent / "examples")))
    m = Mesh.local(
        num_cpus=8,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        config=MeshConfig(
            lease_s=3.0,
            ask_timeout_s=20.0,
            max_hops=16,
            state_dir=tmp_path_factory.mktemp("state"),  # no snapshots from earlier runs
        ),
    )
    yield m
    await m.shutdown()


@pytest.fixture
async def spawn(mesh: Mesh) -> AsyncIterator[Spawn]:
    """Spawn agents with names unique to the test; stop them when it ends."""
    started: list[str] = []

    async def _spawn(agent_cls: type[Agent], name: str, **kwargs: Any) -> AgentInfo:
        unique = f"{name}-{next(_names)}"
        info = await mesh.spawn(agent_cls, name=unique, **kwargs)
        started.append(unique)
        return info

    yield _spawn
    for name in reversed(started):
        with contextlib.suppress(MeshError):  # already killed by the test
            await mesh.stop(name)


@pytest.fixture
def bench() -> Bench:
    """Run a suite from the repo's root, starting its own local Ray (not the session's)."""

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    return run
