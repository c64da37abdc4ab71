"""A team's access rules judge streamed asks as they judge asks."""

from __future__ import annotations

import itertools

import pytest
from _stream_agents import Said, Say
from test_access import StartTeam, start_team  # noqa: F401 (the fixture)

from mesh import AccessDeniedError, Mesh

pytestmark = pytest.mark.ray

_ids = itertools.count()


async def test_a_team_closed_to_drivers_refuses_their_streams_and_allows_what_its_rules_allow(
    mesh: Mesh,
    start_team: StartTeam,  # noqa: F811
) -> None:
    n = next(_ids)
    front, back = f"sfront-{n}", f"sback-{n}"
    await start_team({
        "name": f"stream-acl-{n}",
        "agents": [{"name": front, "agent": "_stream_agents:Talker"},
                   {"name": back, "agent": "_stream_agents:Talker"}],
        "access": {"edge": False, "allow": [{"from": ["edge"], "to": [front],
                                             "types": ["test.stream.say/1"]}]},
    })  # fmt: skip
    with pytest.raises(AccessDeniedError, match=f"may not send 'test.stream.say/1' to '{back}'"):
        await mesh.stream(back, Say(count=2)).result()
    chunks = []
    async with mesh.stream(front, Say(count=2)) as s:
        chunks = [chunk.text async for chunk in s]
    assert chunks == ["w0 ", "w1 "]
    assert s.reply == Said(text="w0 w1", agent=front)
    stats = await mesh.stats(back)
    assert stats.refusals == {"access": 1}
