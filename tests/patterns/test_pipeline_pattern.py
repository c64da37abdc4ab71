"""pipeline: each stage's output feeds the next; a failing stage is named."""

from __future__ import annotations

import time

import pytest
from pattern_helpers import answering, failing, stalling

from protocols.envelope import Kind
from protocols.message import Message
from protocols.messenger import InMemoryMessenger
from protocols.patterns import Reply, Request, StageFailedError, pipeline


async def test_each_stages_output_is_the_next_stages_input() -> None:
    net = InMemoryMessenger()
    net.register("draft", answering(lambda r: f"draft({r.text})"))
    net.register("edit", answering(lambda r: f"edit({r.text})"))
    result = await pipeline(net, ["draft", "edit"], Request(text="topic"), timeout=1.0)
    assert result.output.text == "edit(draft(topic))"
    assert [s.agent for s in result.stages] == ["draft", "edit"]
    assert result.trace_id == net.trace_id
    assert net.count(trace_id=net.trace_id, kind=Kind.ASK) == 2


async def test_a_failing_stage_stops_the_pipeline_with_stage_failed_error_naming_it() -> None:
    net = InMemoryMessenger()
    net.register("draft", answering(lambda r: r.text))
    net.register("edit", failing("model exploded"))
    net.register("publish", answering(lambda r: r.text))
    with pytest.raises(StageFailedError) as info:
        await pipeline(net, ["draft", "edit", "publish"], Request(text="t"), timeout=1.0)
    assert (info.value.stage, info.value.index) == ("edit", 1)
    assert "model exploded" in info.value.reason
    assert net.count(recipient="publish") == 0


async def test_a_stage_that_outlives_the_deadline_fails_as_a_named_stage() -> None:
    net = InMemoryMessenger()
    net.register("slow", stalling())
    with pytest.raises(StageFailedError) as info:
        await pipeline(net, ["slow"], Request(text="t"), timeout=0.02)
    assert info.value.stage == "slow"
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_every_stage_gets_the_time_left_of_the_pipelines_deadline() -> None:
    net = InMemoryMessenger()
    left: list[float | None] = []

    async def stage(msg: Message, m: InMemoryMessenger) -> Message | None:
        left.append(m.remaining())
        assert isinstance(msg, Request)
        return Reply(text=msg.text)

    net.register("a", stage)
    net.register("b", stage)
    await pipeline(net.with_deadline(time.time() + 5.0), ["a", "b"], Request(text="t"), timeout=0.5)
    assert all(x is not None and 0 < x <= 0.5 for x in left)
    assert len(left) == 2
