"""The wheel holds what `raymesh bench` imports: the benchmark suite and the peer's script.

`.ci/run` installs the wheel into a fresh virtualenv and runs the commands; this checks
its contents, quickly, against the list of what the commands need.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = (
    "benchmarks/cli.py",  # raymesh bench, raymesh chaos (plugin commands)
    "benchmarks/__main__.py",  # python -m benchmarks
    "benchmarks/topology.py",
    "benchmarks/peer.py",
    "benchmarks/_autogen.py",  # run as a script by the peer's own interpreter
    "mesh/cli/__init__.py",
    "mesh/cli/__main__.py",  # python -m mesh.cli, a job's entrypoint
    "benchmarks/chaos/report.py",
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_holds_the_benchmark_suite(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=280,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("raymesh-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    missing = [name for name in NEEDED if name not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    assert not [n for n in names if n.startswith("tests/")], "tests do not ship"
