"""The deadline wheel cancels overdue tasks, spares those unwatched in time, and says which."""

from __future__ import annotations

import asyncio
import time

from mesh.datapath._deadlines import DeadlineWheel


async def test_a_task_past_its_deadline_is_cancelled_and_reported_fired() -> None:
    wheel = DeadlineWheel(resolution_s=0.01)
    task = asyncio.create_task(asyncio.sleep(5))
    slot = wheel.watch(task, time.time() + 0.05)
    started = time.monotonic()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert 0.03 < time.monotonic() - started < 4.0  # the task sleeps 5 s
    assert wheel.unwatch(task, slot) is True
    assert wheel.unwatch(task, slot) is False  # reported once


async def test_a_task_unwatched_before_its_deadline_is_left_alone() -> None:
    wheel = DeadlineWheel(resolution_s=0.01)
    task = asyncio.create_task(asyncio.sleep(0.2))
    slot = wheel.watch(task, time.time() + 0.05)
    assert wheel.unwatch(task, slot) is False
    await task
    assert not task.cancelled()


async def test_tasks_with_nearby_deadlines_share_a_slot() -> None:
    wheel = DeadlineWheel(resolution_s=10.0)
    tasks = [asyncio.create_task(asyncio.sleep(0)) for _ in range(3)]
    now = time.time()
    slots = [wheel.watch(task, now + 20) for task in tasks]
    assert len(set(slots)) == 1
    for task, slot in zip(tasks, slots, strict=True):
        assert wheel.unwatch(task, slot) is False
    await asyncio.gather(*tasks)
