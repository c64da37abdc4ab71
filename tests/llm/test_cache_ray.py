"""The response cache in a Ray agent: `mesh.usage()` and `raymesh status`'s rows show the
hits and the dollars saved."""

from __future__ import annotations

import pytest
from conftest import Spawn

from actors import Completion, LLMAgent, Prompt
from actors.loopback import LoopbackLLMServer, Step
from mesh import Mesh
from mesh.ops import agent_rows

pytestmark = pytest.mark.ray


async def test_usage_and_status_show_cache_hits_and_dollars_saved(mesh: Mesh, spawn: Spawn) -> None:
    with LoopbackLLMServer() as server:
        server.always("priced", Step(text="the answer", usage=(1000, 500)))
        agent = await spawn(
            LLMAgent, "cached", model="openai:priced", base_url=server.openai_url,
            api_key="dummy", prices={"openai:priced": {"input": 1.0, "output": 2.0}},
            cache=True,
        )  # fmt: skip
        for _ in range(3):
            reply = await mesh.ask(agent.name, Prompt(text="same"), timeout=20, expect=Completion)
            assert reply.text == "the answer"
        assert len(server.requests_for("priced")) == 1
    report = await mesh.usage(names=[agent.name])
    assert report.total.calls == 3
    assert report.total.cached_calls == 2
    assert report.total.cost_usd == pytest.approx(0.002)
    assert report.total.saved_usd == pytest.approx(0.004)
    [row] = [r for r in await agent_rows(mesh) if r["name"] == agent.name]
    assert row["cache_hits"] == 2
    assert row["saved_usd"] == pytest.approx(0.004)
