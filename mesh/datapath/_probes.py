"""Watchdogs that live in every host: cycle detection, probes' arithmetic, loop heartbeat.

No central actor is involved. Same-chain cycles are visible at once in an ask's
``chain``. Cycles across conversations are found by edge-chasing probes in the style of
Chandy, Misra and Haas: an ask that has waited longer than the probe delay sends a probe
along its wait edge; a host that receives one forwards it along the asks that block the
probed ask; a probe that comes back to the ask it started from has found a cycle. The
youngest ask in the cycle is failed, a deterministic choice, so that when several probes
find the same cycle they all pick the same victim and exactly one ask fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from mesh.errors import DeadlockError
from protocols import Envelope

__all__ = ["Heartbeat", "PathEntry", "Probe", "cross_chain_deadlock", "same_chain_deadlock"]

#: A probe's path entry: (owner agent, ask id, started at, trace id).
PathEntry = tuple[str, str, float, str]
#: A probe: the ask it is about, and the path of waiting asks that led to it.
Probe = tuple[str, list[PathEntry]]


def same_chain_deadlock(agent: str, env: Envelope) -> DeadlockError | None:
    """Return the error for an ask that would close a cycle in its own chain, else None.

    Call it only for a serial agent that is handling a message of the same trace: the
    agent is then waiting upstream in this chain and can never serve the ask.
    """
    if agent not in env.chain:
        return None
    # An agent's ask appends the agent to the chain, so the sender is its last entry.
    cycle = [*env.chain[env.chain.index(agent) :], agent]
    return DeadlockError(
        f"{' -> '.join(cycle)}: {agent!r} is waiting in this chain and handles one message "
        "at a time, so it can never serve this ask",
        cycle=cycle,
        agent=agent,
        trace_id=env.trace_id,
        hint="reply instead of asking back, or give the agent concurrency > 1",
    )


def cross_chain_deadlock(path: list[PathEntry]) -> tuple[PathEntry, DeadlockError]:
    """Return the ask to fail for a cycle found by a probe, and the error to fail it with."""
    cycle = [entry[0] for entry in path] + [path[0][0]]
    victim = max(path, key=lambda entry: (entry[2], entry[1]))
    return victim, DeadlockError(
        f"{' -> '.join(cycle)}: asks of different conversations wait on each other; "
        f"the youngest, {victim[0]!r}'s, was failed to break the cycle",
        cycle=cycle,
        agent=victim[0],
        trace_id=victim[3],
        hint="the other conversations go on; retry this one, or avoid asking back",
    )


class Heartbeat:
    """A tick on the host's main event loop; its lag tells a busy loop from a stuck one.

    The control lane (another thread) reads the lag, so it can report a loop blocked
    by a synchronous handler while that loop cannot run anything itself. A process
    starved of CPU lags too, without being blocked: `blocked` tells them apart by
    asking the loop to run a callback, which a starved loop does as soon as it gets the
    CPU and a blocked one cannot do at all.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checking: asyncio.Task[bool] | None = None

    async def run(self) -> None:
        """Tick forever on the current loop."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._last = time.monotonic()
            await asyncio.sleep(self._period_s)

    def lag_s(self) -> float:
        """Return how late the loop is beyond its period (0 when healthy)."""
        return max(0.0, time.monotonic() - self._last - self._period_s)

    async def blocked(self, *, within_s: float = 0.2) -> bool:
        """Return True if the loop does not run a callback within `within_s`.

        Called from another loop (the control lane) once the lag is over its limit: a
        loop that runs the callback lags because its process was starved, not blocked.
        Callers at the same time share one check, so health calls do not queue up
        behind each other's waits.
        """
        if self._loop is None:
            return False
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._check(within_s))
        return await asyncio.shield(self._checking)

    async def _check(self, within_s: float) -> bool:
        assert self._loop is not None
        ran: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self._loop.call_soon_threadsafe(ran.set_result, None)
        except RuntimeError:  # the loop is closed
            return False
        try:
            await asyncio.wait_for(asyncio.wrap_future(ran), within_s)
        except TimeoutError:
            return True
        return False
