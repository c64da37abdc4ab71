"""The heartbeat tells a blocked loop from a starved one, from another thread's loop (no Ray)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from mesh.datapath._probes import Heartbeat


@pytest.fixture
def main_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, Heartbeat]]:
    """A host's main loop, ticking a heartbeat in a thread of its own."""
    loop = asyncio.new_event_loop()
    heartbeat = Heartbeat(0.01)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(heartbeat.run(), loop)
    time.sleep(0.05)
    yield loop, heartbeat
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


async def test_a_running_loop_is_not_blocked(
    main_loop: tuple[asyncio.AbstractEventLoop, Heartbeat],
) -> None:
    _, heartbeat = main_loop
    assert not await heartbeat.blocked(within_s=0.5)


async def test_a_loop_held_by_blocking_code_is_blocked_and_lags(
    main_loop: tuple[asyncio.AbstractEventLoop, Heartbeat],
) -> None:
    loop, heartbeat = main_loop
    loop.call_soon_threadsafe(time.sleep, 0.6)  # a handler calling blocking code
    await asyncio.sleep(0.3)
    assert heartbeat.lag_s() > 0.2
    assert await heartbeat.blocked(within_s=0.1)
    await asyncio.sleep(0.4)  # the blocking call is over: the loop answers again
    assert not await heartbeat.blocked(within_s=0.5)
