"""Ray calls on an async actor settle in the step that ends them, so a blocked loop cannot
freeze the whole actor.

Ray runs each call to an async actor as a coroutine on the concurrency group's event
loop, driven from a fiber thread. The coroutine wakes that thread as it ends, and the
thread then waits, *blocking*, for the call's future, which the loop sets a turn later.
If a handler blocks the loop in between, the fiber thread stays blocked with it; the
next call to that group then blocks the actor's dispatch thread (its channel to the
fibers is unbuffered), and no call reaches any group, the control lane included. Found
with py-spy on a hung agent whose control lane fell silent (Ray 2.60).

Tasks for Ray's calls therefore run their done callbacks (which set that future) at
once, in the step that ends them, instead of on the next turn of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["is_ray_call", "settle_ray_calls_at_once"]

# The coroutine Ray wraps every async actor call in (ray/_raylet.pyx).
_RAY_CALL = "run_async_func_or_coro_in_event_loop.<locals>.async_func"


class _SettlingTask(asyncio.tasks._PyTask):  # type: ignore[name-defined,misc]
    """A task whose done callbacks run as it finishes, not a loop turn later."""

    def _Future__schedule_callbacks(self) -> None:  # noqa: N802 -- overrides Future's private hook
        callbacks = self._callbacks[:]
        self._callbacks[:] = []
        for callback, context in callbacks:
            try:
                context.run(callback, self)
            except Exception as exc:  # as the loop would report a failing callback
                self._loop.call_exception_handler(
                    {"message": "done callback of a Ray call failed", "exception": exc}
                )


def is_ray_call(coro: object) -> bool:
    """Return True if `coro` is the coroutine Ray runs an async actor call in."""
    return getattr(coro, "__qualname__", "").endswith(_RAY_CALL)


def _task_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
    **kwargs: Any,
) -> asyncio.Task[Any]:
    if is_ray_call(coro):
        task: asyncio.Task[Any] = _SettlingTask(coro, loop=loop, **kwargs)
        return task
    return asyncio.Task(coro, loop=loop, **kwargs)


def settle_ray_calls_at_once(loop: asyncio.AbstractEventLoop) -> None:
    """Make Ray's calls on `loop` settle as they end (see the module's docstring)."""
    loop.set_task_factory(_task_factory)
