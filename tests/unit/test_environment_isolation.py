"""The suite checks the same things whatever the shell that runs it has set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import os
from pathlib import Path

def test_sees_a_clean_environment():
    leaked = sorted(n for n in os.environ
                    if n.startswith(("RAYMESH_SECRET", "OPENAI_", "ANTHROPIC_", "RAY_ADDRESS"))
                    or n.endswith("_API_KEY"))
    assert leaked == [], leaked
    assert Path(os.environ["RAY_AUTH_TOKEN_PATH"]).parent.parent != Path.home()
    assert not os.environ["RAYMESH_HOME"].startswith(str(Path.home() / ".raymesh"))
"""


def test_the_shells_settings_and_keys_do_not_reach_the_tests(tmp_path: Path) -> None:
    # A test module beside the suite's own conftest, run by a pytest whose shell is dirty.
    probe_dir = ROOT / "tests" / "unit" / f"_probe_{os.getpid()}"
    probe_dir.mkdir()
    try:
        (probe_dir / "test_probe.py").write_text(_PROBE)
        dirty = {
            **os.environ,
            "RAYMESH_SECRET": "not-the-suite's-secret",
            "RAYMESH_ASK_TIMEOUT_S": "0.001",
            "OPENAI_API_KEY": "sk-from-the-shell-0123456789",
            "OPENAI_BASE_URL": "http://192.0.2.1:9",
            "ANTHROPIC_API_KEY": "sk-ant-from-the-shell-0123456789",
            "RAY_ADDRESS": "192.0.2.1:6379",
            "SOME_SERVICE_API_KEY": "opaque-9876543210",
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe_dir)],
            cwd=ROOT,
            env=dirty,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(probe_dir)
    assert done.returncode == 0, done.stdout + done.stderr
