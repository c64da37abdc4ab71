"""Handler deadlines for thousands of messages a second: one timer per slot of time.

`asyncio.timeout` arms a timer for every handled message; at the rates the mesh runs
at, making and cancelling those timers was a sixth of a host's CPU (py-spy). Here the
handlers whose deadlines fall in the same slot (10 ms by default) share one timer, so
a deadline fires at most one slot late, and a message costs a set insert and removal.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

__all__ = ["DeadlineWheel"]

Task = asyncio.Task[Any]


class DeadlineWheel:
    """Cancels tasks whose deadline passed while they were being watched.

    Args:
        resolution_s: Width of a slot: how late a deadline may fire.
    """

    def __init__(self, *, resolution_s: float = 0.01) -> None:
        self._resolution = resolution_s
        self._slots: dict[int, set[Task]] = {}
        self._fired: set[Task] = set()

    def watch(self, task: Task, deadline: float) -> int:
        """Cancel `task` once `deadline` (epoch seconds) has passed; return its slot."""
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + deadline - time.time()) / self._resolution)
        tasks = self._slots.get(slot)
        if tasks is None:
            tasks = self._slots[slot] = set()
            loop.call_at(slot * self._resolution, self._expire, slot)
        tasks.add(task)
        return slot

    def unwatch(self, task: Task, slot: int) -> bool:
        """Stop watching `task`; return True if its deadline cancelled it meanwhile."""
        tasks = self._slots.get(slot)
        if tasks is not None:
            tasks.discard(task)
        if task in self._fired:
            self._fired.discard(task)
            return True
        return False

    def _expire(self, slot: int) -> None:
        for task in self._slots.pop(slot, ()):
            self._fired.add(task)
            task.cancel()
