"""Hierarchical delegation over a dependency graph of subtasks.

A plan is a DAG: subtasks whose dependencies are done run in parallel, each receiving
its dependencies' results; a failed subtask is retried on the next agent of its role
(reassigned) before the plan gives up; an integrator, if named, assembles the results.
Cycles are refused before anything is sent, naming the cycle, because a plan that can
never finish should cost nothing.
"""

from __future__ import annotations

import asyncio
import graphlib
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from protocols.errors import describe
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import NoPeerError, PlanCycleError, PlanError, SubtaskFailedError
from protocols.patterns.messages import Reply, Request

__all__ = [
    "DelegationResult",
    "Plan",
    "Subtask",
    "SubtaskRecord",
    "check_plan",
    "delegate",
    "plan_with",
]


class Subtask(BaseModel):
    """One node of a plan: who does it (an agent, or any agent of a role) and after what."""

    id: str
    text: str
    role: str | None = None
    agent: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class Plan(BaseModel):
    """Subtasks with dependencies, and optionally an agent that integrates their results."""

    goal: str
    subtasks: list[Subtask]
    integrator: str | None = None


class SubtaskRecord(BaseModel):
    """Who did a subtask, what it produced, and the failed attempts before that."""

    id: str
    agent: str
    reply: Reply
    failures: list[dict[str, str]] = Field(default_factory=list)


class DelegationResult(BaseModel):
    """The integrated answer (or None without an integrator) and every subtask's record."""

    answer: Reply | None
    subtasks: dict[str, SubtaskRecord]


async def plan_with(
    messenger: Messenger, manager: str, goal: str, *, timeout: float | None = None
) -> Plan:
    """Ask `manager` to plan `goal`: it answers a `Request` with ``Reply.data["plan"]``.

    Raises:
        PlanError: The reply carries no valid plan.
    """
    reply = await messenger.ask(manager, Request(text=goal), timeout=timeout, expect=Reply)
    try:
        return Plan.model_validate(reply.data.get("plan"))
    except ValidationError as exc:
        raise PlanError(
            f"manager {manager!r} sent no valid plan: {exc.error_count()} problems",
            agent=manager,
            trace_id=messenger.trace_id,
            hint='reply with data={"plan": {"goal": ..., "subtasks": [...]}}',
        ) from None


def _check(plan: Plan, trace_id: str | None) -> dict[str, Subtask]:
    by_id: dict[str, Subtask] = {}
    for sub in plan.subtasks:
        if sub.id in by_id:
            raise PlanError(f"subtask id {sub.id!r} is used twice", trace_id=trace_id)
        if (sub.role is None) == (sub.agent is None):
            raise PlanError(
                f"subtask {sub.id!r} must name exactly one of role and agent",
                trace_id=trace_id,
            )
        by_id[sub.id] = sub
    for sub in plan.subtasks:
        missing = [d for d in sub.depends_on if d not in by_id]
        if missing:
            raise PlanError(
                f"subtask {sub.id!r} depends on unknown subtasks {missing}",
                trace_id=trace_id,
            )
    return by_id


async def _candidates(plan: Plan, messenger: Messenger) -> dict[str, list[str]]:
    candidates: dict[str, list[str]] = {}
    for sub in plan.subtasks:
        if sub.role is not None and sub.role not in candidates:
            found = sorted(p.name for p in await messenger.peers(role=sub.role))
            if not found:
                raise NoPeerError(
                    f"no agent has the role {sub.role!r} (subtask {sub.id!r})",
                    trace_id=messenger.trace_id,
                )
            candidates[sub.role] = found
    return candidates


def _sorter(plan: Plan, trace_id: str | None) -> graphlib.TopologicalSorter[str]:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(
        {sub.id: sub.depends_on for sub in plan.subtasks}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # graphlib gives the cycle with its first node repeated at the end, in reverse
        # order of waiting; turn it round so that each subtask depends on the next.
        cycle = list(reversed(exc.args[1]))
        raise PlanCycleError(
            f"the plan's dependencies form a cycle: {' -> '.join(cycle)}",
            cycle=cycle,
            trace_id=trace_id,
            hint="remove one dependency of the cycle",
        ) from None
    return sorter


def check_plan(plan: Plan, *, trace_id: str | None = None) -> None:
    """Check a plan's shape without running it (`delegate` does the same first).

    Raises:
        PlanCycleError: The dependencies form a cycle; ``.cycle`` names it.
        PlanError: A duplicate id, an unknown dependency, or neither/both of role and agent.
    """
    _check(plan, trace_id)
    _sorter(plan, trace_id)


async def delegate(
    messenger: Messenger,
    plan: Plan,
    *,
    max_attempts: int = 2,
    timeout: float | None = None,
) -> DelegationResult:
    """Run `plan`: independent subtasks in parallel, results passed along dependency edges.

    Each subtask gets a `Request` whose ``data["inputs"]`` maps each dependency's id to
    its reply's ``{"text", "data"}``. A subtask given by role starts on one agent of that
    role (spread round-robin) and moves to the next on failure, up to `max_attempts`.

    Args:
        messenger: Who to talk through.
        plan: The plan.
        max_attempts: Tries per subtask, across agents of its role, at least 1.
        timeout: Seconds for the whole plan (the messenger's deadline also applies).

    Raises:
        ValueError: `max_attempts` is below 1.
        PlanCycleError: The dependencies form a cycle; ``.cycle`` names it.
        PlanError: A duplicate id, an unknown dependency, or neither/both of role and agent.
        NoPeerError: No agent has a subtask's role.
        SubtaskFailedError: A subtask failed on every attempt; running ones are cancelled.
        PatternTimeoutError: The deadline passed.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    by_id = _check(plan, messenger.trace_id)
    sorter = _sorter(plan, messenger.trace_id)
    deadline = deadline_of(messenger, timeout)
    candidates = await _candidates(plan, messenger)
    spread: dict[str, int] = {}
    records: dict[str, SubtaskRecord] = {}

    async def run(sub: Subtask) -> SubtaskRecord:
        if sub.agent is not None:
            agents = [sub.agent]
        else:
            assert sub.role is not None  # checked by _check
            agents = candidates[sub.role]
        start = spread.get(sub.role or "", 0)
        spread[sub.role or ""] = start + 1
        inputs = {
            dep: {"text": records[dep].reply.text, "data": records[dep].reply.data}
            for dep in sub.depends_on
        }
        request = Request(text=sub.text, data={**sub.data, "subtask": sub.id, "inputs": inputs})
        failures: list[dict[str, str]] = []
        for attempt in range(max_attempts):
            agent = agents[(start + attempt) % len(agents)]
            left = time_left(messenger, deadline, what=f"delegate subtask {sub.id!r}")
            try:
                reply = await messenger.ask(agent, request, timeout=left, expect=Reply)
            except Exception as exc:
                reraise_if_conversation_wide(exc)
                failures.append({"agent": agent, "reason": describe(exc)})
                continue
            return SubtaskRecord(id=sub.id, agent=agent, reply=reply, failures=failures)
        raise SubtaskFailedError(
            f"subtask {sub.id!r} failed on {len(failures)} attempts",
            subtask=sub.id,
            failures=failures,
            trace_id=messenger.trace_id,
            hint="see .failures; add agents of its role or raise max_attempts",
        )

    running: dict[asyncio.Task[SubtaskRecord], str] = {}
    try:
        while sorter.is_active():
            for ready in sorter.get_ready():
                running[asyncio.create_task(run(by_id[ready]))] = ready
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                sub_id = running.pop(task)
                records[sub_id] = task.result()
                sorter.done(sub_id)
    finally:
        # Invariant: when a subtask fails for good, nothing else of the plan runs on.
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    answer: Reply | None = None
    if plan.integrator is not None:
        left = time_left(messenger, deadline, what="delegate before integration")
        results = {k: {"text": r.reply.text, "data": r.reply.data} for k, r in records.items()}
        answer = await messenger.ask(
            plan.integrator,
            Request(text=plan.goal, data={"inputs": results}),
            timeout=left,
            expect=Reply,
        )
    ordered = {sub.id: records[sub.id] for sub in plan.subtasks}
    return DelegationResult(answer=answer, subtasks=ordered)
