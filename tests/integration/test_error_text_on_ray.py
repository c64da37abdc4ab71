"""On Ray, a failure passed from agent to agent to the edge names its context once."""

from __future__ import annotations

import pytest
from _agents import Relay, Relayer
from conftest import Spawn

from mesh import HandlerError, Mesh


async def test_a_handler_failure_asked_through_an_agent_reads_its_context_once(
    mesh: Mesh, spawn: Spawn
) -> None:
    asker = await spawn(Relayer, "asker")
    failing = await spawn(Relayer, "failing")  # its handler raises: no agent 'nobody'
    with pytest.raises(HandlerError) as caught:
        await mesh.ask(asker.name, Relay(route=[failing.name, "nobody"]), trace_id="cd" * 16)
    error = caught.value
    text = str(error)
    assert (error.agent, error.remote_type) == (failing.name, "PeerNotFoundError")
    assert "no agent named 'nobody'" in text
    assert text.count("[agent=") == 1, text
    assert text.count("cd" * 16) == 1, text
    assert text.count("(hint:") <= 1, text
