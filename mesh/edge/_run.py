"""`Mesh.run`: a team given one task, start to stop, as one call (what ``raymesh run`` does).

The team starts, its entry agent gets the task, and the team is stopped in order (children
in reverse start order) however the run ends. Before it stops, the agents' counters, the
run's model usage and its spans are read: once the team is gone they are gone too.

This module does not import `Mesh` (that would be an import cycle): it asks of the mesh only
the methods `_Driver` names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mesh.config import MeshConfig
from mesh.control import TeamHandle, TeamSpec, load_team
from mesh.edge._stream import read_answer
from mesh.errors import DecodeError
from mesh.observability import FLUSH_S, AgentStats, UsageReport
from mesh.security import redact_data
from protocols import Message, Result, Stream, Task, new_trace_id

__all__ = ["AgentRun", "RunOutcome", "run_team", "settled_trace"]


class _Spans(Protocol):
    async def trace(self, trace_id: str | None = None) -> list[dict[str, Any]]: ...


class _Driver(_Spans, Protocol):
    """What a run needs of a `Mesh`."""

    config: MeshConfig

    async def team(self, source: str | Path | dict[str, Any] | TeamSpec) -> TeamHandle: ...
    async def ask(self, name: str, msg: Message, *, timeout: float | None = ...,
                  trace_id: str | None = ..., expect: type[Result]) -> Result: ...  # fmt: skip
    def stream(self, name: str, msg: Message, *, timeout: float | None = ...,
               trace_id: str | None = ...) -> Stream: ...  # fmt: skip
    async def stats(self, name: str) -> AgentStats: ...
    async def usage(
        self, *, names: list[str] | None = None, trace_id: str | None = None
    ) -> UsageReport: ...


@dataclass(frozen=True)
class AgentRun:
    """One agent of the team as the run left it.

    The counters are None for an agent that was not running at the end; `tokens` and
    `cost_usd` are None for one that made no model call in the run.
    """

    team: str
    name: str
    incarnation: str | None
    restarts: int
    running: bool
    last_exit: dict[str, Any] | None
    received: int | None = None
    handled: int | None = None
    sent: int | None = None
    failed: int | None = None
    tokens: int | None = None
    cost_usd: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The row as ``raymesh run --json`` prints it (the unknown figures left out)."""
        row = {"team": self.team, "name": self.name, "kind": "agent",
               "incarnation": self.incarnation, "restarts": self.restarts,
               "running": self.running, "last_exit": self.last_exit}  # fmt: skip
        figures = ("received", "handled", "sent", "failed", "tokens", "cost_usd")
        return row | {k: getattr(self, k) for k in figures if getattr(self, k) is not None}


@dataclass(frozen=True)
class RunOutcome:
    """What a run of a team on one task came to.

    Attributes:
        team: The team's name.
        entry: The agent that was given the task.
        trace_id: The run's conversation (``raymesh trace`` shows it).
        result: The entry agent's answer.
        agents: The team's agents in start order, sub-teams' included.
        usage: The run's model calls, tokens and cost (this trace only).
        spans: The run's spans, all of them in (none when tracing is off).
    """

    team: str
    entry: str
    trace_id: str
    result: Result
    agents: tuple[AgentRun, ...]
    usage: UsageReport
    spans: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def as_json(self) -> dict[str, Any]:
        """The outcome as ``raymesh run --json`` prints it (without the spans)."""
        total, by_agent = self.usage.total, self.usage.by_agent
        usage = {"calls": total.calls, "tokens": total.input_tokens + total.output_tokens,
                 "cost_usd": total.cost_usd, "estimated_calls": total.estimated_calls,
                 "by_agent": {a: u.model_dump() for a, u in by_agent.items()}}  # fmt: skip
        return {"team": self.team, "entry": self.entry, "trace_id": self.trace_id,
                "result": self.result.model_dump(),
                "members": [agent.as_json() for agent in self.agents], "usage": usage}  # fmt: skip


async def run_team(
    mesh: _Driver,
    team: str | Path | dict[str, Any] | TeamSpec,
    task: str,
    *,
    timeout: float,
    trace_id: str | None = None,
    on_step: Callable[[str], object] | None = None,
    on_text: Callable[[str], object] | None = None,
) -> RunOutcome:
    """Start `team`, ask its entry agent `task`, read what the run did, stop the team.

    See `Mesh.run`.
    """
    step = on_step or (lambda _: None)
    spec = load_team(team)
    step(f"starting team {spec.name!r}")
    handle = await mesh.team(spec)
    try:
        trace_id = trace_id or new_trace_id()
        step(f"{handle.entry} is working on the task")
        answer = await _ask_unless_the_team_fails(
            mesh, handle, task, timeout, trace_id, on_text=on_text
        )
        # The answer is printed and kept (a model may repeat a key a tool read): masked.
        result = type(answer).model_validate(redact_data(answer.model_dump()))
        agents, usage = await _agent_runs(mesh, handle, trace_id)
        spans = await settled_trace(mesh, trace_id) if mesh.config.tracing else []
        return RunOutcome(team=spec.name, entry=handle.entry, trace_id=trace_id, result=result,
                          agents=agents, usage=usage, spans=tuple(spans))  # fmt: skip
    finally:
        step("stopping the team")
        await handle.stop()


async def _ask_unless_the_team_fails(
    mesh: _Driver,
    team: TeamHandle,
    task: str,
    timeout: float,
    trace_id: str,
    *,
    on_text: Callable[[str], object] | None = None,
) -> Result:
    # A team failing past its restart intensity ends the run at once, with its error.
    if on_text is None:
        answer = mesh.ask(team.entry, Task(text=task), timeout=timeout, trace_id=trace_id,
                          expect=Result)  # fmt: skip
    else:
        stream = mesh.stream(team.entry, Task(text=task), timeout=timeout, trace_id=trace_id)
        answer = _streamed(stream, on_text)
    asking = asyncio.ensure_future(answer)
    failing = asyncio.ensure_future(team.wait())
    try:
        done, _ = await asyncio.wait([asking, failing], return_when=asyncio.FIRST_COMPLETED)
        if failing in done:
            failing.result()  # raises the team's failure
        return await asking
    finally:
        asking.cancel()
        failing.cancel()


async def _streamed(stream: Stream, on_text: Callable[[str], object]) -> Result:
    answer = await read_answer(stream, on_text)
    if not isinstance(answer, Result):
        raise DecodeError(
            f"the entry agent answered the task with {type(answer).__name__}, not a Result",
            trace_id=stream.trace_id,
            hint="a team's entry agent answers a Task with a Result",
        )
    return answer


async def _agent_runs(
    mesh: _Driver, team: TeamHandle, trace_id: str
) -> tuple[tuple[AgentRun, ...], UsageReport]:
    # The counters first: the usage queries after them are messages too.
    rows = [row for row in await team.members() if row["kind"] == "agent"]
    counters = {row["name"]: await mesh.stats(row["name"]) for row in rows if row["running"]}
    usage = await mesh.usage(names=list(counters), trace_id=trace_id)
    runs = []
    for row in rows:
        figures: dict[str, Any] = {}
        if (stats := counters.get(row["name"])) is not None:
            figures |= {"received": stats.received, "handled": stats.handled,
                        "sent": stats.sent, "failed": stats.failed}  # fmt: skip
        if (spent := usage.by_agent.get(row["name"])) is not None:
            figures |= {"tokens": spent.input_tokens + spent.output_tokens,
                        "cost_usd": spent.cost_usd}  # fmt: skip
        runs.append(AgentRun(team=row["team"], name=row["name"], incarnation=row["incarnation"],
                             restarts=row["restarts"], running=row["running"],
                             last_exit=row["last_exit"], **figures))  # fmt: skip
    return tuple(runs), usage


async def settled_trace(
    mesh: _Spans, trace_id: str, *, within: float = 5.0
) -> list[dict[str, Any]]:
    """Return a conversation's spans once they have all reached the span store.

    Hosts ship spans every `FLUSH_S`: once the root span (which ends last) is in, one
    more shipment period brings the spans of the other hosts.
    """
    deadline = time.monotonic() + within
    while not any(s["parent_span_id"] is None for s in await mesh.trace(trace_id)):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(FLUSH_S + 0.1)
    return await mesh.trace(trace_id)
