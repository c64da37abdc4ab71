"""Hung agents: a handler that blocks the event loop, and a process stopped with SIGSTOP.

The supervisor finds the first through the host's control lane (a Ray concurrency
group of its own, which still answers and reports the loop's lag) and the second by
that lane's silence; it kills and replaces either. Asks sent to the hung agent must
end, typed, by their deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ray.exceptions import RayError

from benchmarks.chaos._agents import Freeze, Work, Worked, Worker
from benchmarks.chaos._figure import Figure, as_ms, as_s
from benchmarks.chaos._support import (
    HUNG_AFTER_S,
    error_name,
    eventually,
    incarnations,
    start_team,
    unique,
)
from mesh.control import TeamHandle
from mesh.edge import Mesh
from mesh.errors import DeadlineExceededError, MeshError

__all__ = ["LANE_REPORT", "Fault", "HungFigures", "hung_agent"]

Fault = Literal["blocked loop", "SIGSTOP"]

# A blocked loop must be reported by the control lane, which runs on a thread of its own;
# only a stopped process may be found by silence.
LANE_REPORT = "the control lane's report of the loop's lag"
#: Detection on an idle node; a starved one stretches the supervisor's limits (issue 24:
#: a starved host is not taken for a hung one), and this target with them.
DETECT_WITHIN_S = 2.0
# A loop lag that shows the loop blocked, not merely busy.
_BLOCKED_FOR_S = 0.5


@dataclass
class HungFigures:
    """How fast a hung agent was found and replaced, and how asks to it ended."""

    fault: Fault
    detected_s: float | None = None
    #: How far the supervisor had stretched its hang limits (its node starved) when it
    #: killed the agent: 1.0 on an idle node.
    stretch: float = 1.0
    replaced_s: float | None = None
    reason: str = ""
    asks: int = 0
    replies: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    hung: int = 0
    overshoot_max_ms: float | None = None
    lane_lag_max_s: float | None = None

    @property
    def lane_answered(self) -> bool:
        """True if the control lane answered while the loop was blocked (half a second on)."""
        return self.lane_lag_max_s is not None and self.lane_lag_max_s >= _BLOCKED_FOR_S

    @property
    def found_by(self) -> str:
        """How the supervisor knew: the control lane reported the lag, or fell silent."""
        if "event loop is blocked" in self.reason:
            return LANE_REPORT
        if "has not answered" in self.reason:
            return "the control lane's silence"
        return self.reason or "not found"

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"hung agent: {self.fault}"
        typed = self.replies + sum(self.errors.values())
        errors = ", ".join(f"{e} {n}" for e, n in sorted(self.errors.items())) or "none"
        return [
            Figure(
                name,
                f"detected (by the supervisor; its limits stretched {self.stretch:.2f}x by "
                "the node's starvation)",
                as_s(self.detected_s),
                f"<= {DETECT_WITHIN_S * self.stretch:.1f} s",
                self.detected_s is not None and self.detected_s <= DETECT_WITHIN_S * self.stretch,
            ),
            Figure(
                name,
                "control lane, asked while hung: largest loop lag it reported",
                "no answer" if self.lane_lag_max_s is None else as_s(self.lane_lag_max_s),
                "answers" if self.fault == "blocked loop" else "",
                None if self.fault != "blocked loop" else self.lane_answered,
            ),
            Figure(
                name,
                "found by",
                self.found_by,
                "the lane's report" if self.fault == "blocked loop" else "",
                None if self.fault != "blocked loop" else self.found_by == LANE_REPORT,
            ),
            Figure(
                name,
                "replaced (successor answers)",
                as_s(self.replaced_s),
                "<= 10 s",
                self.replaced_s is not None and self.replaced_s <= 10,
            ),
            Figure(
                name,
                "asks to it ended typed",
                f"{typed}/{self.asks}: {errors}",
                "all",
                typed == self.asks and self.hung == 0,
            ),
            Figure(
                name,
                "max lateness at the deadline",
                as_ms(self.overshoot_max_ms),
                "<= 1000 ms",
                self.overshoot_max_ms is None or self.overshoot_max_ms <= 1000,
            ),
        ]


async def hung_agent(
    mesh: Mesh, *, fault: Fault, asks: int = 8, deadline_s: float = 3.0
) -> HungFigures:
    """Hang one supervised agent by `fault`; measure detection, replacement and its asks."""
    name = unique("hung")
    team = await start_team(mesh, [name], Worker)
    figures = HungFigures(fault=fault, asks=asks)
    before = (await incarnations(mesh))[name]
    try:
        await mesh.ask(name, Work(ms=0), timeout=30, expect=Worked)  # the link is up
        hung_at, hung_mono = time.time(), time.monotonic()
        if fault == "SIGSTOP":
            os.kill(before.pid, signal.SIGSTOP)
            freezing = None
        else:
            freezing = asyncio.create_task(_ask(mesh, name, Freeze(seconds=60), deadline_s))
        outcomes = asyncio.gather(*(_ask(mesh, name, Work(ms=1), deadline_s) for _ in range(asks)))
        probing = asyncio.create_task(_probe_lane(await mesh.actor(name), figures))
        figures.detected_s, figures.reason, figures.stretch = await _detected(team, name, hung_at)
        probing.cancel()

        async def answered() -> bool:
            found = (await incarnations(mesh)).get(name)
            if found is None or found.incarnation == before.incarnation:
                return False
            try:
                await mesh.ask(name, Work(ms=0), timeout=1, expect=Worked)
            except MeshError:
                return False
            return True

        if await eventually(answered, within=30) is not None:
            figures.replaced_s = time.monotonic() - hung_mono
        for outcome in await outcomes:
            _count(figures, outcome)
        if freezing is not None:
            await freezing
    finally:
        if fault == "SIGSTOP":
            await _end_stopped(before.pid)
        await team.stop()
    return figures


async def _probe_lane(handle: Any, figures: HungFigures) -> None:
    """Ask the hung host's control lane for its health until it dies; keep the largest lag.

    One call at a time: a call that has not answered within a second is waited on, not
    sent again, so that unanswered calls do not pile up in the lane.
    """
    while True:
        call = handle.health.remote()
        try:
            health = await call
        except RayError:
            return  # killed by its supervisor
        figures.lane_lag_max_s = max(figures.lane_lag_max_s or 0.0, health["loop_lag_s"])
        await asyncio.sleep(0.1)


async def _ask(mesh: Mesh, name: str, msg: Freeze | Work, deadline_s: float) -> str | float:
    """Return "reply", the error's name, "hung", or the overshoot (s) of a deadline."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(mesh.ask(name, msg, timeout=deadline_s), deadline_s + HUNG_AFTER_S)
    except MeshError as exc:
        if isinstance(exc, DeadlineExceededError):
            return time.monotonic() - started - deadline_s
        return error_name(exc)
    except TimeoutError:
        return "hung"
    return "reply"


def _count(figures: HungFigures, outcome: str | float) -> None:
    if isinstance(outcome, float):
        figures.errors["DeadlineExceededError"] = figures.errors.get("DeadlineExceededError", 0) + 1
        worst = figures.overshoot_max_ms or 0.0
        figures.overshoot_max_ms = max(worst, outcome * 1000)
    elif outcome == "hung":
        figures.hung += 1
    elif outcome == "reply":
        figures.replies += 1
    else:
        figures.errors[outcome] = figures.errors.get(outcome, 0) + 1


async def _detected(team: TeamHandle, name: str, since: float) -> tuple[float | None, str, float]:
    """Return when the supervisor took `name` for dead or stuck, after `since`, why, and
    how far it had stretched its limits."""
    found: dict[str, float | str] = {}

    async def exited() -> bool:
        rows = {row["name"]: row for row in await team.members()}
        last = rows[name]["last_exit"]
        if last is not None and last["at"] >= since:
            found.update(last)
        return bool(found)

    if await eventually(exited, within=30) is None:
        return None, "", 1.0
    return float(found["at"]) - since, str(found["reason"]), float(found["stretch"])


async def _end_stopped(pid: int) -> None:
    """Let the stopped process take its kill; SIGKILL it if it has not died soon after."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)

    async def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    if await eventually(gone, within=5) is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
