"""Patterns run unchanged on the Ray mesh: a handler's Context is a Messenger."""

from __future__ import annotations

import asyncio
import time

import pytest
from _agents import GetNotes, Notes, Piper, Publish, RunPipeline, Stage, Subscriber
from conftest import Spawn

from mesh import Mesh
from protocols.patterns.messages import Reply

pytestmark = pytest.mark.ray


async def test_a_pipeline_runs_from_inside_a_handler_on_real_agents(
    mesh: Mesh, spawn: Spawn
) -> None:
    stages = [(await spawn(Stage, f"stage{i}")).name for i in range(3)]
    piper = await spawn(Piper, "piper")
    trace = "5e" * 16
    done = await mesh.ask(piper.name, RunPipeline(stages=stages, text="in"), trace_id=trace,
                          expect=Reply)  # fmt: skip
    assert done.text == "in>" + ">".join(stages)
    assert done.data["trace"] == trace


async def test_publish_reaches_every_subscriber_but_the_publisher(mesh: Mesh, spawn: Spawn) -> None:
    subs = [(await spawn(Subscriber, f"sub{i}")).name for i in range(3)]
    extra = await spawn(Subscriber, "sub-extra", topics=["sports"])
    await mesh.ask(subs[0], Publish(topic="news", headline="raymesh ships"))
    await mesh.ask(extra.name, Publish(topic="sports", headline="goal"))

    async def heard(name: str) -> list[str]:
        return (await mesh.ask(name, GetNotes(), expect=Notes)).senders

    deadline = time.monotonic() + 10
    while (await heard(subs[1]), await heard(subs[2])) != (["raymesh ships"], ["raymesh ships"]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await heard(subs[0]) == []  # the publisher does not hear itself
    assert "raymesh ships" in await heard(extra.name)  # the class's topic, and its own
    assert await heard(subs[1]) == ["raymesh ships"]  # not subscribed to sports
