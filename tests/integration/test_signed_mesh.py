"""A signed mesh on a real Ray: hosts refuse forged, replayed and spoofed frames and go on."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray
from _agents import Echo, GetNotes, Note, Notes, Ping, Pong, Relay, Relayer, Seen
from _hostcalls import deliver, request

from mesh import Mesh, MeshConfig, ReplayError, SignatureError
from mesh.control._spawn import start_host
from mesh.control._team import AgentSpec
from mesh.datapath._endpoint import Endpoint
from protocols import Codec, Envelope, Kind, MeshError

pytestmark = pytest.mark.ray

_ids = itertools.count()


@dataclass
class SignedMesh:
    config: MeshConfig
    edge: Endpoint
    hosts: dict[str, Any]

    async def spawn(self, agent: type, name: str) -> str:
        unique = f"{name}-signed-{next(_ids)}"
        host, _ = await start_host(AgentSpec.build(name=unique, agent=agent), self.config)
        self.hosts[unique] = host
        return unique


@pytest.fixture
async def signed(mesh: Mesh) -> AsyncIterator[SignedMesh]:
    """Signed agents and a signed edge in the session's Ray, beside its unsigned ones."""
    config = MeshConfig(**{**mesh.config.model_dump(), "secret": "secret-" + uuid.uuid4().hex})
    edge = Endpoint(name=f"edge-{uuid.uuid4().hex[:8]}", incarnation=uuid.uuid4().hex[:16],
                    config=config, registry=mesh._registry, types=mesh._edge.types)  # fmt: skip
    group = SignedMesh(config, edge, {})
    yield group
    edge.close()
    for host in group.hosts.values():
        await host.stop.remote()
        ray.kill(host)


#: The incarnation of the hand-made sender: every link of its own names it.
_SENDER_INCARNATION = uuid.uuid4().hex[:16]
_links = itertools.count()


def _frame(codec: Codec, sender: str, recipient: str, kind: Kind = Kind.ASK, *,
           to: str) -> bytes:  # fmt: skip
    """Return a frame for incarnation `to` of `recipient`, from the hand-made sender."""
    env = Envelope(kind=kind, type=Ping.type_tag or "", sender=sender, recipient=recipient,
                   payload=codec.encode_message(Ping(text="forged")), deadline=1e10,
                   to_incarnation=to, from_incarnation=_SENDER_INCARNATION)  # fmt: skip
    return codec.encode(env)


def _link(sender: str) -> str:
    """Return a fresh link of the hand-made sender (its own sequence numbers)."""
    return f"{sender}#{_SENDER_INCARNATION}/{next(_links)}"


async def test_signed_agents_talk_and_relay(signed: SignedMesh) -> None:
    echo = await signed.spawn(Echo, "echo")
    relays = [await signed.spawn(Relayer, "relay") for _ in range(3)]
    assert await signed.edge.ask(echo, Ping(text="hi"), expect=Pong) == Pong(text="hi")
    seen = await signed.edge.ask(relays[0], Relay(route=relays[1:]), expect=Seen)
    assert [hop["agent"] for hop in seen.hops] == relays


async def test_an_unsigned_sender_is_refused_by_a_signed_host(
    mesh: Mesh, signed: SignedMesh
) -> None:
    echo = await signed.spawn(Echo, "echo")
    # The host's signed answer tells the unsigned edge why, as a typed error.
    with pytest.raises(SignatureError, match="no secret"):
        await mesh.ask(echo, Ping(text="hi"), timeout=5)
    with pytest.raises(SignatureError, match="no signature"):
        await mesh.tell(echo, Note(seq=1))


async def test_a_host_refuses_forged_replayed_and_spoofed_frames_and_keeps_serving(
    signed: SignedMesh,
) -> None:
    echo = await signed.spawn(Echo, "echo")
    host = signed.hosts[echo]
    codec = signed.config.codec()
    sender = signed.edge.name

    to = await host.ping.remote()
    good = _frame(codec, sender, echo, to=to)
    reply = codec.decode(await request(host, _link(sender), 0, good))
    assert signed.edge.open_reply(reply, Pong) == Pong(text="forged")

    refused: list[MeshError] = []
    forged = bytearray(_frame(codec, sender, echo, to=to))
    forged[20] ^= 0x40
    wrong_key = _frame(Codec(signer=MeshConfig(secret="w" * 32).codec().signer), sender, echo,
                       to=to)  # fmt: skip
    for frame in (bytes(forged), wrong_key, good):  # `good` again: a replay
        answer = codec.decode(await request(host, _link(sender), 0, frame))
        assert answer.kind is Kind.ERROR
        with pytest.raises(SignatureError) as caught:
            signed.edge.open_reply(answer, Pong)
        refused.append(caught.value)
    assert isinstance(refused[2], ReplayError)

    spoofed = _frame(codec, "admin", echo, Kind.TELL, to=to)
    tell = _frame(codec, sender, echo, Kind.TELL, to=to)
    refusals, _ = await deliver(host, _link(sender), 0, [spoofed, tell, tell])
    assert [index for index, _ in refusals] == [0, 2]
    assert "'admin'" in MeshError.from_wire(refusals[0][1]).message
    assert MeshError.from_wire(refusals[1][1]).__class__ is ReplayError

    # Still serving, and nothing refused reached the agent.
    await signed.edge.tell(echo, Note(seq=7))
    notes = await signed.edge.ask(echo, GetNotes(), expect=Notes)
    assert notes.seqs == [7]
    stats = await host.stats.remote()
    assert stats["refusals"] == {"signature": 2, "replay": 2, "spoofed_sender": 1}
