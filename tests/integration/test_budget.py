"""A budget given at the edge travels with every ask: sub-agents draw on what is left."""

from __future__ import annotations

import pytest
from _agents import Delegate, Delegator
from conftest import Spawn

from actors import BudgetExceededError, Completion, Prompt, Reasoner
from mesh import Mesh

pytestmark = pytest.mark.ray


async def _tokens(mesh: Mesh, names: list[str], trace_id: str) -> dict[str, int]:
    report = await mesh.usage(names=names, trace_id=trace_id)
    return {n: u.input_tokens + u.output_tokens for n, u in report.by_agent.items()}


async def test_what_a_peer_spends_is_taken_from_the_askers_allowance(
    mesh: Mesh, spawn: Spawn
) -> None:
    peer = await spawn(Reasoner, "budget-peer", model="offline:peer")
    lead = await spawn(Delegator, "budget-lead", model="offline:lead")
    task = Delegate(peer=peer.name, text="why is the sky blue")

    # Unlimited: both calls are made; measure what each costs.
    await mesh.ask(lead.name, task, trace_id="c1" * 16, expect=Completion)
    spent = await _tokens(mesh, [peer.name, lead.name], "c1" * 16)
    assert set(spent) == {peer.name, lead.name}

    # What each call reserves up front (an estimate), from a refusal with nothing left.
    needed = {}
    for agent in (peer, lead):
        with pytest.raises(BudgetExceededError) as refused:
            await mesh.ask(agent.name, Prompt(text=task.text), budget={"tokens": 0})
        needed[agent.name] = int(refused.value.needed["tokens"])

    # Enough for the peer's call, one token short of the lead's once the peer's spending
    # came back with its reply: the lead's own call must be refused.
    budget = spent[peer.name] + needed[lead.name] - 1
    assert budget >= needed[peer.name]
    with pytest.raises(BudgetExceededError) as caught:
        await mesh.ask(lead.name, task, trace_id="c2" * 16, budget={"tokens": budget})
    assert caught.value.agent == lead.name
    assert caught.value.trace_id == "c2" * 16
    assert caught.value.remaining["tokens"] == needed[lead.name] - 1
    assert await _tokens(mesh, [peer.name, lead.name], "c2" * 16) == {peer.name: spent[peer.name]}

    # A generous budget changes nothing.
    done = await mesh.ask(lead.name, task, budget={"tokens": 10 * sum(spent.values())},
                          expect=Completion)  # fmt: skip
    assert done.text


async def test_a_budget_too_small_for_the_first_call_stops_the_conversation_at_once(
    mesh: Mesh, spawn: Spawn
) -> None:
    peer = await spawn(Reasoner, "tiny-budget", model="offline:peer")
    with pytest.raises(BudgetExceededError, match="tokens left"):
        await mesh.ask(peer.name, Prompt(text="anything at all"), budget={"tokens": 5})
    assert (await mesh.usage(names=[peer.name])).total.calls == 0
