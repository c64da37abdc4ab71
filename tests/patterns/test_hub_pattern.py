"""hub_and_spoke: requests go to specialists found by role or capability."""

from __future__ import annotations

import pytest
from pattern_helpers import answering, failing

from protocols.message import Message
from protocols.messenger import InMemoryMessenger
from protocols.patterns import Assemble, NoPeerError, Reply, Request, hub_and_spoke


def team() -> InMemoryMessenger:
    net = InMemoryMessenger()
    net.register("coder-1", answering(lambda r: f"code:{r.text}"), role="coder")
    net.register("coder-2", answering(lambda r: f"code2:{r.text}"), role="coder")
    net.register("searcher", answering(lambda r: f"found:{r.text}"), capabilities=["search"])
    return net


async def test_requests_are_routed_by_role_and_spread_over_the_agents_of_a_role() -> None:
    net = team()
    result = await hub_and_spoke(
        net, [("coder", Request(text="a")), ("coder", Request(text="b"))], timeout=1.0
    )
    assert [(s.key, s.agent) for s in result.spokes] == [("coder", "coder-1"), ("coder", "coder-2")]
    assert result.answer.text == "code:a\ncode2:b"


async def test_requests_routed_by_capability_are_assembled_by_the_assembler() -> None:
    net = team()

    async def assemble(msg: Message, _: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Assemble)
        return Reply(text=" + ".join(f"{d.author}={d.text}" for d in msg.drafts))

    net.register("editor", assemble)
    result = await hub_and_spoke(
        net,
        [("search", Request(text="q"))],
        route_by="capability",
        assembler="editor",
        timeout=1.0,
    )
    assert result.answer.text == "searcher=found:q"
    assert result.assembled_by == "editor"


async def test_a_missing_specialist_raises_no_peer_error_before_anything_is_sent() -> None:
    net = team()
    with pytest.raises(NoPeerError):
        await hub_and_spoke(net, [("coder", Request(text="a")), ("poet", Request(text="b"))])
    assert net.log == []


async def test_a_failing_spoke_is_recorded_and_the_others_still_answer() -> None:
    net = team()
    net.register("coder-2", failing("down"), role="coder")
    result = await hub_and_spoke(
        net, [("coder", Request(text="a")), ("coder", Request(text="b"))], timeout=1.0
    )
    assert [s.agent for s in result.failed] == ["coder-2"]
    assert result.answer.text == "code:a"
