"""The benchmark CLI as `raymesh bench` runs it: ``python -m benchmarks``, in a Ray of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _bench_cli import Bench

ROOT = Path(__file__).resolve().parents[2]


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
