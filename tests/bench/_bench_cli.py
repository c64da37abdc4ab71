"""The type of the `bench` fixture (tests/bench/conftest.py), for the tests' annotations."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

#: Runs ``python -m benchmarks ARGS`` to success within `timeout` seconds; returns the run.
Bench = Callable[..., subprocess.CompletedProcess[str]]
