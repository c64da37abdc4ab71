"""The stage profiler (`raymesh bench profile`): what it names exists, and its sums hold.

No Ray: the clock, the timed coroutines and the arithmetic are plain Python. The run
itself is `raymesh bench profile` (a few seconds of real Ray).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks import stages


@pytest.mark.parametrize(
    "target", [t for _, targets in stages.STAGES for t in targets], ids=lambda t: t
)
def test_every_timed_function_exists(target: str) -> None:
    # A rename in the runtime must fail here, not leave a stage silently at zero.
    _owner, _attr, raw = stages.resolve(target)
    assert callable(getattr(raw, "__func__", raw))


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_nested_stage_is_counted_once_in_itself() -> None:
    clock = stages.StageClock()
    clock.enter("encode")
    _spin(0.02)
    clock.enter("sign")
    _spin(0.03)
    clock.leave()
    clock.leave()
    assert 0.018 < clock.ns["encode"] / 1e9 < 0.028
    assert 0.028 < clock.ns["sign"] / 1e9 < 0.038
    assert clock.segments == {**dict.fromkeys(stages.ROWS, 0), "encode": 2, "sign": 1}


async def test_a_timed_coroutine_counts_its_steps_not_its_waits() -> None:
    clock = stages.StageClock()

    async def work() -> str:
        _spin(0.01)
        await asyncio.sleep(0.05)  # suspended: charged to nothing
        _spin(0.01)
        return "done"

    task = asyncio.get_running_loop().create_task(stages._Timed(work(), "dispatch", clock))  # type: ignore[arg-type]
    assert await task == "done"
    assert 0.018 < clock.ns["dispatch"] / 1e9 < 0.03


def test_per_message_adds_the_untimed_rest_and_other_threads() -> None:
    fig = stages.StageFigures(ns={"encode": 3_000_000, "send": 1_000_000},
                              segments={"encode": 1000, "send": 1000}, ray_calls=3,
                              loop_ns=10_000_000, process_ns=15_000_000,
                              transition_ns=500.0)  # fmt: skip
    us, total = stages.per_message({"one": fig}, messages=1000)
    assert us["encode"] == pytest.approx(2.5)
    assert us["send"] == pytest.approx(0.5)
    assert us[stages.PROFILER] == pytest.approx(1.0)
    assert us[stages.LOOP_REST] == pytest.approx(6.0)
    assert us[stages.OTHER_THREADS] == pytest.approx(5.0)
    assert total == pytest.approx(15.0)  # the whole process's CPU, per message
