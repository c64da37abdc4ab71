"""`.ci/run` fails when any step fails, the README's install included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_install_fails_ci_before_the_linters(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    readme_line = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("python3 -m venv .venv && ") and line.endswith("pytest")
    )
    (tmp_path / "README.md").write_text(f"```bash\n{readme_line}\n```\n")
    (tmp_path / "pyproject.toml").write_text("this is [not toml\n")  # pip refuses it at once

    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode != 0, done.stdout + done.stderr
    # The old form went on past the failed install and died later, at the linters.
    assert "ruff" not in done.stdout + done.stderr, "CI went on after the install failed"
