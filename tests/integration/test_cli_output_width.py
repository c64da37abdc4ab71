"""Output that goes to a pipe, a file or a job's log is not cut to 80 columns.

Rich uses 80 columns where there is no terminal; a table then shortens names
(``review/w…``) that nobody can widen afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).parents[2]


def test_raymesh_run_into_a_pipe_prints_whole_names(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "RAY_ADDRESS"}}
    env["RAYMESH_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mesh.cli", "run", "examples/review_team.yaml", "--task", "raymesh"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("│")[1].strip() + " " + line.split("│")[2].strip()
            for line in done.stdout.splitlines() if line.count("│") > 3}  # fmt: skip
    assert {"review lead", "review researcher", "review/writers critic",
            "review/writers archivist", "review/writers writer"} <= rows, done.stdout  # fmt: skip
    assert "…" not in done.stdout
