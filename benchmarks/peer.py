"""The autogen-core baseline in a virtualenv of its own, built on first use and reused.

autogen-core pins a protobuf that Ray's own pin rejects, so it cannot be installed next
to Ray. The benchmark installs the pinned version into a virtualenv under
``$RAYMESH_HOME/peers`` and runs the ring there (`benchmarks/_autogen.py`, a standalone
script that imports neither Ray nor raymesh), one subprocess per measurement, with its
parameters and figures as JSON over stdin and stdout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mesh.config import raymesh_home
from mesh.errors import BaselineError

__all__ = ["PIN", "Peer", "ensure", "env_dir"]

#: The baseline's version; a change rebuilds the cached virtualenv.
PIN = "autogen-core==0.7.5"
_SCRIPT = Path(__file__).with_name("_autogen.py")
_MARKER = "raymesh-pin.txt"
_SKIP = "or run without the baseline: `raymesh bench --no-peer`"


def env_dir() -> Path:
    """Where the baseline's virtualenv lives (under ``$RAYMESH_HOME``)."""
    return raymesh_home() / "peers" / "autogen-core"


@dataclass(frozen=True)
class Peer:
    """The ring workload on autogen-core, run by the baseline's own interpreter."""

    python: Path

    async def ring(
        self, n: int, *, ask: bool, count: int, window: int, payload_bytes: int
    ) -> tuple[float, list[float], float]:
        """Run one ring in a subprocess; return (seconds, ask latencies in ms, CPU seconds)."""
        request = {"n": n, "ask": ask, "count": count, "window": window,
                   "payload_bytes": payload_bytes}  # fmt: skip
        # -I: neither PYTHONPATH nor the script's directory may shadow the baseline's imports.
        proc = await asyncio.create_subprocess_exec(
            str(self.python), "-I", str(_SCRIPT),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate(json.dumps(request).encode())
        if proc.returncode != 0:
            raise BaselineError(
                f"the autogen-core ring ({n} agents) failed with exit {proc.returncode}: "
                f"{_last_line(err)}",
                hint=f"delete {env_dir()} to rebuild the baseline's virtualenv, {_SKIP}",
            )
        figures = json.loads(out)
        return figures["seconds"], figures["latencies_ms"], figures["cpu_s"]


def ensure(console: Console) -> Peer:
    """Return the baseline, building its virtualenv first if it is missing or out of date.

    Raises:
        BaselineError: the virtualenv could not be made or the pin could not be installed
            (offline, or the package index refused).
    """
    root = env_dir()
    python = root / "bin" / "python"
    marker = root / _MARKER
    if python.exists() and marker.is_file() and marker.read_text().strip() == PIN:
        return Peer(python)
    with console.status(f"installing the autogen-core baseline ({PIN}) into {root}; "
                        "first run only"):  # fmt: skip
        _run([sys.executable, "-m", "venv", "--clear", str(root)], "create its virtualenv")
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PIN],
             f"pip install {PIN}")  # fmt: skip
    marker.write_text(PIN + "\n")  # last: a half-built virtualenv is rebuilt next time
    return Peer(python)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BaselineError(
            f"could not {what} for the autogen-core baseline in {env_dir()}: "
            f"{_last_line(done.stderr)}",
            hint=f"check that pip can reach its package index, or install it by hand "
            f"({sys.executable} -m venv {env_dir()} && {env_dir()}/bin/pip install {PIN} "
            f"&& echo {PIN} > {env_dir() / _MARKER}), {_SKIP}",
        )


def _last_line(text: str | bytes) -> str:
    lines = (text.decode(errors="replace") if isinstance(text, bytes) else text).strip()
    return lines.splitlines()[-1] if lines else "no output"
