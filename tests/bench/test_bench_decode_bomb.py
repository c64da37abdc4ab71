"""The decode-bomb benchmark runs end to end and shows the limits at work.

Run as a subprocess (`python -m benchmarks decode-bomb`), as `raymesh bench` runs it:
each bomb is refused, the legitimate large payload handled, and for each the agent's
heap grew at most 10 MiB while it kept answering small asks. How long its loop stalled
(the target is 50 ms) is the benchmark's figure, not asserted: a test checks behaviour,
and a loaded machine stretches any stall (113 ms in one CI run beside two other tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Bench

from benchmarks.decode_bomb import HEAP_TARGET_MIB


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_decode_bombs_are_refused_within_10_mib_while_the_agent_answers(
    bench: Bench, tmp_path: Path
) -> None:
    out = tmp_path / "bomb.json"
    done = bench("decode-bomb", "--json", str(out), timeout=280)
    assert "decode bombs at a live agent" in done.stdout
    shapes = {shape["name"]: shape for shape in json.loads(out.read_text())["decode-bomb"]}
    assert len(shapes) == 4
    for name, shape in shapes.items():
        legitimate = "legitimate" in name
        assert shape["outcome"].startswith("decoded" if legitimate else "refused"), shape
        assert shape["heap_mib"] is not None, shape
        assert shape["heap_mib"] <= HEAP_TARGET_MIB, shape
        assert shape["asks_answered"] > 0, shape  # its loop kept answering meanwhile
        # Before the limits, each bomb cost several times the target heap.
        if not legitimate:
            assert shape["unbounded_heap_mib"] > 4 * shape["heap_mib"], shape
