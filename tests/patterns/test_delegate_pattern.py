"""delegate: a DAG of subtasks, run in parallel, reassigned on failure, nested patterns."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from pattern_helpers import answering, failing

from protocols.message import Message
from protocols.messenger import Handler, InMemoryMessenger
from protocols.patterns import (
    Judge,
    Plan,
    PlanCycleError,
    PlanError,
    Position,
    Propose,
    Reply,
    Request,
    Subtask,
    SubtaskFailedError,
    Verdict,
    debate,
    delegate,
    plan_with,
)


def joiner(prefix: str) -> Handler:
    """Reply with the prefix and the texts of the subtask's inputs."""
    return answering(
        lambda r: f"{prefix}({','.join(v['text'] for v in r.data.get('inputs', {}).values())})"
    )


def diamond(**roles: str) -> Plan:
    return Plan(
        goal="report",
        subtasks=[
            Subtask(id="research", text="find", role=roles.get("research", "researcher")),
            Subtask(id="code", text="build", role="coder", depends_on=["research"]),
            Subtask(id="tests", text="test", role="coder", depends_on=["research"]),
            Subtask(id="write", text="write", agent="writer", depends_on=["code", "tests"]),
        ],
        integrator="lead",
    )


async def test_results_flow_along_edges_and_the_integrator_gets_them_all() -> None:
    net = InMemoryMessenger()
    net.register("r", joiner("R"), role="researcher")
    net.register("c1", joiner("C1"), role="coder")
    net.register("c2", joiner("C2"), role="coder")
    net.register("writer", joiner("W"))
    net.register("lead", joiner("LEAD"))
    result = await delegate(net, diamond(), timeout=1.0)
    assert result.subtasks["code"].reply.text in {"C1(R())", "C2(R())"}
    assert {result.subtasks["code"].agent, result.subtasks["tests"].agent} == {"c1", "c2"}
    assert result.answer is not None
    assert result.answer.text.startswith("LEAD(R(),")


async def test_independent_subtasks_run_in_parallel() -> None:
    net = InMemoryMessenger()
    both_started = asyncio.Barrier(2)

    async def coder(msg: Message, _: InMemoryMessenger) -> Message | None:
        # Both coders must be inside their handler at once to pass the barrier.
        await asyncio.wait_for(both_started.wait(), 1.0)
        return Reply(text="ok")

    net.register("r", joiner("R"), role="researcher")
    net.register("c1", coder, role="coder")
    net.register("c2", coder, role="coder")
    net.register("writer", joiner("W"))
    net.register("lead", joiner("LEAD"))
    result = await delegate(net, diamond(), timeout=2.0)
    assert result.subtasks["write"].reply.text == "W(ok,ok)"


async def test_a_failed_subtask_is_reassigned_to_another_agent_of_its_role() -> None:
    net = InMemoryMessenger()
    net.register("r1", failing("out of tokens"), role="researcher")
    net.register("r2", joiner("R2"), role="researcher")
    plan = Plan(goal="g", subtasks=[Subtask(id="research", text="find", role="researcher")])
    result = await delegate(net, plan, max_attempts=2, timeout=1.0)
    record = result.subtasks["research"]
    assert record.agent == "r2"
    assert [f["agent"] for f in record.failures] == ["r1"]
    assert "out of tokens" in record.failures[0]["reason"]
    assert result.answer is None


async def test_a_subtask_failing_on_every_agent_raises_and_runs_nothing_downstream() -> None:
    net = InMemoryMessenger()
    net.register("r1", failing("a"), role="researcher")
    net.register("r2", failing("b"), role="researcher")
    net.register("c", joiner("C"), role="coder")
    net.register("writer", joiner("W"))
    net.register("lead", joiner("LEAD"))
    with pytest.raises(SubtaskFailedError) as info:
        await delegate(net, diamond(), max_attempts=2, timeout=1.0)
    assert info.value.subtask == "research"
    assert [f["agent"] for f in info.value.failures] == ["r1", "r2"]
    assert net.count(recipient="c") == 0


async def test_a_plan_with_a_cycle_is_rejected_naming_the_cycle_before_anything_is_sent() -> None:
    net = InMemoryMessenger()
    plan = Plan(
        goal="g",
        subtasks=[
            Subtask(id="a", text="a", agent="x", depends_on=["b"]),
            Subtask(id="b", text="b", agent="x", depends_on=["c"]),
            Subtask(id="c", text="c", agent="x", depends_on=["a"]),
            Subtask(id="d", text="d", agent="x"),
        ],
    )
    with pytest.raises(PlanCycleError) as info:
        await delegate(net, plan)
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
    # Each subtask in the cycle depends on the next one.
    deps = {s.id: s.depends_on for s in plan.subtasks}
    assert all(nxt in deps[cur] for cur, nxt in itertools.pairwise(cycle))
    assert net.log == []


async def test_a_dependency_on_an_unknown_subtask_is_a_plan_error() -> None:
    plan = Plan(goal="g", subtasks=[Subtask(id="a", text="a", agent="x", depends_on=["zz"])])
    with pytest.raises(PlanError, match="zz"):
        await delegate(InMemoryMessenger(), plan)


async def test_a_subtask_agent_can_run_a_debate_through_its_own_messenger() -> None:
    net = InMemoryMessenger()

    def propose(answer: str) -> Handler:
        async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
            assert isinstance(msg, Propose)
            return Position(answer=answer)

        return handle

    async def judge(msg: Message, _: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Judge)
        return Verdict(passed=True, winner="pro")

    async def moderator(msg: Message, m: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Request)
        result = await debate(m, ["pro", "con"], "judge", msg.text, rounds=0)
        return Reply(text=result.answer, data={"judge": result.judge})

    net.register("pro", propose("yes"))
    net.register("con", propose("no"))
    net.register("judge", judge)
    net.register("moderator", moderator, role="moderator")
    plan = Plan(goal="g", subtasks=[Subtask(id="decide", text="ship?", role="moderator")])
    result = await delegate(net, plan, timeout=1.0)
    assert result.subtasks["decide"].reply.text == "yes"
    # The nested debate ran in the same conversation, asked by the moderator.
    assert net.count(trace_id=net.trace_id, sender="moderator", recipient="judge") == 1
    assert {d.trace_id for d in net.log} == {net.trace_id}


async def test_a_manager_agent_can_write_the_plan() -> None:
    net = InMemoryMessenger()
    plan = Plan(goal="g", subtasks=[Subtask(id="only", text="do", agent="worker")])
    net.register("manager", answering_plan(plan))
    net.register("worker", joiner("W"))
    result = await delegate(net, await plan_with(net, "manager", "g"), timeout=1.0)
    assert result.subtasks["only"].reply.text == "W()"


async def test_a_manager_reply_without_a_plan_is_a_plan_error() -> None:
    net = InMemoryMessenger()
    net.register("manager", joiner("no plan"))
    with pytest.raises(PlanError, match="manager"):
        await plan_with(net, "manager", "g")


def answering_plan(plan: Plan) -> Handler:
    async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
        return Reply(text="plan", data={"plan": plan.model_dump()})

    return handle
