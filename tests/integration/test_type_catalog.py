"""A reply whose type tag nobody defined: a typed error and a dead letter, never a crash."""

from __future__ import annotations

import time
import uuid

import pytest
import ray
from _agents import CallPeer, Crosser, Outcome, Ping, Pong, UnknownTagReplier
from conftest import Spawn

from mesh import AgentInfo, Mesh

pytestmark = pytest.mark.ray


async def test_a_reply_of_a_tag_nobody_defined_is_a_typed_dead_letter(
    mesh: Mesh, spawn: Spawn
) -> None:
    asker = (await spawn(Crosser, "asker")).name
    forger_name = f"forger-{uuid.uuid4().hex[:6]}"
    forger = ray.remote(UnknownTagReplier).options(num_cpus=0).remote()
    await forger.ping.remote()
    info = AgentInfo(name=forger_name, node_id="stand-in", incarnation=uuid.uuid4().hex[:16],
                     pid=0, started_at=time.time())  # fmt: skip
    await mesh._registry.register(info, forger)
    try:
        for _ in range(3):  # asked again: the miss is remembered, and still typed
            outcome = await mesh.ask(asker, CallPeer(peer=forger_name, seconds=0), expect=Outcome)
            assert outcome.error_type == "UnknownMessageTypeError"
        letters = [letter for letter in await mesh.dead_letters(asker)
                   if letter.type == UnknownTagReplier.TAG]  # fmt: skip
        assert [(x.agent, x.reason, x.error_type) for x in letters] == [
            (asker, "schema", "UnknownMessageTypeError")
        ] * 3
        assert await mesh.ask(asker, Ping(text="after"), expect=Pong) == Pong(
            text=f"{asker} saw after"
        )
    finally:
        await mesh._registry.unregister(forger_name, info.incarnation)
        ray.kill(forger)
