"""Every conversation pattern, run by a `PatternConductor` on real Ray actors.

One cast of scripted agents serves the whole module (spawning is the slow part); each
test spawns the conductor of its pattern, gives it a task under a trace id of its own,
and checks the typed result, one failure path, and that every participant's span
belongs to that one trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _agents import Scripted
from conftest import Spawn

from actors import PatternAgent, Verifier
from mesh import ConfigError, HandlerError, Mesh, MeshError
from mesh.control._patterns import PatternConductor
from protocols import Result, Task

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_traces = itertools.count(1)
Cast = dict[str, str]


@pytest.fixture(scope="module")
async def cast(mesh: Mesh) -> AsyncIterator[Cast]:
    """The agents the patterns talk to, by part: name in the mesh."""
    parts: dict[str, tuple[str | None, dict[str, Any]]] = {
        "alpha": ("pat-alpha", {}),
        "beta": ("pat-beta", {}),
        "gamma": ("pat-gamma", {}),
        "broken": ("pat-flaky", {"fail": True}),
        "mender": ("pat-flaky", {}),
        "slow": (None, {"delay": 30.0}),
        "strict": (None, {"reject": "bad"}),
        "bad": (None, {"answer": "bad answer"}),
    }
    names: Cast = {}
    for part, (role, options) in parts.items():
        name = f"pat-{part}"
        await mesh.spawn(Scripted, name=name, role=role, **options)
        names[part] = name
    yield names
    for name in names.values():
        with contextlib.suppress(MeshError):
            await mesh.stop(name)


def _trace() -> str:
    return f"{0xC0DE0000 + next(_traces):032x}"


async def _conduct(
    mesh: Mesh, spawn: Spawn, pattern: dict[str, Any], task: str = "task"
) -> tuple[Result, str]:
    conductor = await spawn(PatternConductor, "conductor", pattern=pattern)
    trace_id = _trace()
    result = await mesh.ask(
        conductor.name, Task(text=task), trace_id=trace_id, timeout=30, expect=Result
    )
    return result, trace_id


async def _fails(mesh: Mesh, spawn: Spawn, pattern: dict[str, Any]) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        await _conduct(mesh, spawn, pattern)
    return caught.value


async def _spanned(
    mesh: Mesh, trace_id: str, names: set[str], *, parents_of: str | None = None
) -> list[dict[str, Any]]:
    """Wait until every agent of `names` has a span in the trace (and, with `parents_of`, the
    parent of every span of that message type has arrived too); return the trace's spans.

    Hosts ship spans in batches, each on its own clock: a child's span can arrive first.
    """
    deadline = time.monotonic() + 15
    while True:
        spans = await mesh.trace(trace_id)
        ids = {s["span_id"] for s in spans}
        orphans = [
            s
            for s in spans
            if parents_of
            and s["attributes"]["raymesh.message.type"].endswith(parents_of)
            and s["parent_span_id"] not in ids
        ]
        if names <= {s["attributes"]["raymesh.agent"] for s in spans} and not orphans:
            assert {s["trace_id"] for s in spans} == {trace_id}
            return spans
        assert time.monotonic() < deadline, (names, spans)
        await asyncio.sleep(0.1)


async def test_hub_routes_by_role_assembles_and_records_a_failed_spoke(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    routes = ["pat-alpha", "pat-beta", "pat-flaky", "pat-flaky"]
    pattern = {"name": "hub", "routes": routes, "assembler": cast["gamma"]}
    result, trace_id = await _conduct(mesh, spawn, pattern)
    assert result.data["pattern"] == "hub"
    # pat-flaky's two requests are spread over its two agents: one of them fails.
    assert result.data["failed"].keys() == {cast["broken"]}
    assert result.text == (
        f"assembled by {cast['gamma']}: {cast['alpha']}(task) + {cast['beta']}(task) "
        f"+ {cast['mender']}(task)"
    )
    assert result.data["assembled_by"] == cast["gamma"]
    await _spanned(mesh, trace_id, {cast["alpha"], cast["beta"], cast["gamma"], cast["mender"]})


async def test_hub_with_no_agent_of_a_role_sends_nothing(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    alpha_before = (await mesh.stats(cast["alpha"])).handled
    error = await _fails(mesh, spawn, {"name": "hub", "routes": ["pat-alpha", "pat-nobody"]})
    assert error.remote_type == "NoPeerError"
    assert "pat-nobody" in error.message
    # The conductor routes everything before asking anyone.
    assert (await mesh.stats(cast["alpha"])).handled == alpha_before


async def test_pipeline_passes_each_reply_on_and_a_failing_stage_stops_it(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    stages = [cast["alpha"], cast["beta"], cast["gamma"]]
    result, trace_id = await _conduct(mesh, spawn, {"name": "pipeline", "stages": stages})
    assert result.text == f"{cast['gamma']}({cast['beta']}({cast['alpha']}(task)))"
    assert result.data["stages"] == stages
    await _spanned(mesh, trace_id, set(stages))

    gamma_before = (await mesh.stats(cast["gamma"])).handled
    error = await _fails(
        mesh, spawn, {"name": "pipeline", "stages": [cast["alpha"], cast["broken"], cast["gamma"]]}
    )
    assert error.remote_type == "StageFailedError"
    assert f"stage 1 ({cast['broken']!r})" in error.message
    assert (await mesh.stats(cast["gamma"])).handled == gamma_before  # never reached


async def test_mesh_review_peers_review_each_other_directly(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    peers = [cast["alpha"], cast["beta"], cast["gamma"], cast["broken"]]
    result, trace_id = await _conduct(mesh, spawn, {"name": "mesh_review", "peers": peers})
    drafts = result.data["drafts"]
    working = peers[:3]
    assert drafts == {p: sorted(q for q in working if q != p) for p in working}
    assert result.data["failed"].keys() == {cast["broken"]}
    assert result.data["assembler"] == cast["alpha"]
    spans = await _spanned(mesh, trace_id, set(peers), parents_of="review_draft/1")
    by_span = {s["span_id"]: s["attributes"]["raymesh.agent"] for s in spans}
    reviews = [
        s for s in spans if s["attributes"]["raymesh.message.type"].endswith("review_draft/1")
    ]
    # Each review was asked for by the author peer itself: no hub on the path.
    assert reviews
    assert {by_span[s["parent_span_id"]] for s in reviews} == set(working)

    error = await _fails(mesh, spawn, {"name": "mesh_review", "peers": [cast["broken"]]})
    assert error.remote_type == "StageFailedError"
    assert "every peer failed" in error.message


async def test_debate_runs_its_rounds_and_the_judge_decides(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    pattern = {"name": "debate", "debaters": [cast["alpha"], cast["beta"]],
               "judge": cast["gamma"], "rounds": 2}  # fmt: skip
    result, trace_id = await _conduct(mesh, spawn, pattern, task="which?")
    assert result.data["rounds"] == 2
    assert result.data["consensus"] is False
    assert result.data["judge"] == cast["gamma"]
    assert result.data["winner"] == cast["beta"]  # the scripted judge picks the last name
    assert result.text == cast["beta"]  # that debater's position
    await _spanned(mesh, trace_id, {cast["alpha"], cast["beta"], cast["gamma"]})


async def test_debate_with_a_judge_too_slow_fails_with_a_judge_timeout(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    pattern = {"name": "debate", "debaters": [cast["alpha"], cast["beta"]],
               "judge": cast["slow"], "rounds": 0, "judge_timeout": 0.5}  # fmt: skip
    error = await _fails(mesh, spawn, pattern)
    assert error.remote_type == "JudgeTimeoutError"
    assert cast["slow"] in error.message


async def test_delegation_runs_the_dag_and_reassigns_a_failed_subtask(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    pattern = {
        "name": "delegation",
        "subtasks": [
            {"id": "facts", "text": "find facts", "agent": cast["alpha"]},
            {"id": "draft", "text": "draft", "role": "pat-flaky", "depends_on": ["facts"]},
            {"id": "check", "text": "check", "agent": cast["beta"], "depends_on": ["facts"]},
        ],
        "integrator": cast["gamma"],
    }
    result, trace_id = await _conduct(mesh, spawn, pattern, task="goal")
    assert result.data["subtasks"] == {"facts": cast["alpha"], "draft": cast["mender"],
                                       "check": cast["beta"]}  # fmt: skip
    [failure] = result.data["reassigned"]["draft"]
    assert failure["agent"] == cast["broken"]
    assert "fails on purpose" in failure["reason"]
    # The integrator got every result along the edges.
    assert result.text == f"{cast['gamma']}(goal+check+draft+facts)"
    await _spanned(mesh, trace_id, {cast["alpha"], cast["beta"], cast["gamma"], cast["mender"]})


async def test_a_delegation_conductor_with_a_cyclic_plan_does_not_start(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    pattern = {
        "name": "delegation",
        "subtasks": [
            {"id": "a", "text": "a", "agent": cast["alpha"], "depends_on": ["b"]},
            {"id": "b", "text": "b", "agent": cast["alpha"], "depends_on": ["a"]},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        await spawn(PatternConductor, "cyclic", pattern=pattern)
    assert "cycle: a -> b -> a" in str(caught.value)


async def test_race_takes_the_first_valid_answer_and_cancels_the_rest(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    # The winner takes 3 s, so the invalid and the failing racers are out before it.
    tardy = await spawn(Scripted, "tardy", delay=3.0)
    racers = [cast["slow"], cast["bad"], cast["broken"], tardy.name]
    pattern = {"name": "race", "racers": racers, "verifier": cast["strict"]}
    result, trace_id = await _conduct(mesh, spawn, pattern)
    assert result.data["winner"] == tardy.name
    assert result.data["cancelled"] == [cast["slow"]]
    assert "not allowed" in result.data["lost"][cast["bad"]]
    assert "fails on purpose" in result.data["lost"][cast["broken"]]
    await _spanned(mesh, trace_id, {tardy.name, cast["bad"], cast["strict"]})

    error = await _fails(mesh, spawn, {"name": "race", "racers": [cast["bad"], cast["broken"]],
                                       "verifier": cast["strict"]})  # fmt: skip
    assert error.remote_type == "NoValidAnswerError"


async def test_verify_retry_feeds_back_until_it_passes_or_gives_up(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    picky = await spawn(Scripted, "picky", pass_after=2)
    pattern = {"name": "verify_retry", "generator": cast["alpha"], "verifier": picky.name,
               "attempts": 3}  # fmt: skip
    result, trace_id = await _conduct(mesh, spawn, pattern)
    assert result.data["attempts"] == 3
    assert result.data["feedback"] == ["not yet (check 1)", "not yet (check 2)"]
    await _spanned(mesh, trace_id, {cast["alpha"], picky.name})

    never = await spawn(Scripted, "never", pass_after=100)
    error = await _fails(mesh, spawn, {**pattern, "verifier": never.name, "attempts": 2})
    assert error.remote_type == "VerificationFailedError"
    assert "in 2 attempts" in error.message


async def test_verify_retry_takes_the_verifier_role_as_its_verifier(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    # On the offline model the writer's answer quotes the start of its prompt, so the
    # second answer starts with the feedback on the first: the checker forbids answers
    # that do not, which makes it fail the first answer and pass the second.
    writer = await spawn(PatternAgent, "writer")
    checker = await spawn(
        Verifier, "checker", role="verifier", forbidden=[r"(?s)^(?!.*feedback on earlier)"]
    )
    pattern = {"name": "verify_retry", "generator": writer.name, "verifier": checker.name,
               "attempts": 3}  # fmt: skip
    result, trace_id = await _conduct(mesh, spawn, pattern)
    assert result.data["attempts"] == 2
    assert len(result.data["feedback"]) == 1
    assert "forbidden pattern" in result.data["feedback"][0]
    await _spanned(mesh, trace_id, {writer.name, checker.name})

    error = await _fails(mesh, spawn, {**pattern, "generator": cast["bad"], "attempts": 2})
    assert error.remote_type == "VerificationFailedError"


async def test_a_delegation_whose_subtask_is_a_debate_nests_on_one_trace(
    mesh: Mesh, spawn: Spawn, cast: Cast
) -> None:
    panel = await spawn(
        PatternConductor,
        "panel",
        pattern={"name": "debate", "debaters": [cast["alpha"], cast["beta"]],
                 "judge": cast["gamma"], "rounds": 1},
    )  # fmt: skip
    pattern = {
        "name": "delegation",
        "subtasks": [
            {"id": "research", "text": "research", "agent": cast["alpha"]},
            {"id": "decide", "text": "decide", "agent": panel.name, "depends_on": ["research"]},
        ],
    }
    result, trace_id = await _conduct(mesh, spawn, pattern, task="goal")
    assert result.data["subtasks"] == {"research": cast["alpha"], "decide": panel.name}
    assert result.text == cast["beta"]  # the debate's verdict is the last subtask's answer
    spans = await _spanned(mesh, trace_id, {panel.name, cast["alpha"], cast["beta"],
                                            cast["gamma"]})  # fmt: skip
    judged = [s for s in spans if s["attributes"]["raymesh.message.type"] == "pattern.judge/1"]
    by_span = {s["span_id"]: s["attributes"]["raymesh.agent"] for s in spans}
    assert [by_span[s["parent_span_id"]] for s in judged] == [panel.name]
