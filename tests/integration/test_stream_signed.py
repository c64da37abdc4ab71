"""Streamed asks on a signed mesh: chunk frames are signed and checked like every frame."""

from __future__ import annotations

import pytest
from _stream_agents import Said, Say, Talker
from test_signed_mesh import SignedMesh, signed  # noqa: F401 (the fixture)

from mesh import Mesh, SignatureError

pytestmark = pytest.mark.ray


async def test_a_signed_edge_streams_a_signed_agent(signed: SignedMesh) -> None:  # noqa: F811
    talker = await signed.spawn(Talker, "talker")
    async with signed.edge.stream(talker, Say(count=3)) as s:
        chunks = [chunk async for chunk in s]
    assert [c.text for c in chunks] == ["w0 ", "w1 ", "w2 "]
    assert s.reply == Said(text="w0 w1 w2", agent=talker)
    letters = await signed.hosts[talker].dead_letters.remote()
    assert letters == []


async def test_an_unsigned_edge_cannot_stream_a_signed_agent(
    mesh: Mesh,
    signed: SignedMesh,  # noqa: F811
) -> None:
    talker = await signed.spawn(Talker, "talker")
    with pytest.raises(SignatureError):
        await mesh.stream(talker, Say(count=3)).result()
    [letter] = await signed.hosts[talker].dead_letters.remote()
    assert letter["reason"] == "signature"
