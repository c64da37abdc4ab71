"""Frames bound to their recipient, driver rights, and mailboxes bounded in bytes, on a real Ray.

Raw frames go to real hosts' inbound methods, as a buggy or hostile peer would send them
(the mesh is unsigned here: `tests/fault/test_forged_frames.py` runs the same attacks
signed). Each refusal must be typed, counted under its reason, dead-lettered, and never
handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _agents import Echo, GetNotes, Note, Notes, Ping, Pong
from _hostcalls import deliver
from _rel_agents import Slow, Work

from benchmarks.chaos._holding import AskIs, Held, Holder, HoldOn, LetGo, Waiter, WhatAsk
from mesh import (
    AccessDeniedError,
    ConfigError,
    MailboxFullError,
    Mesh,
    MeshConfig,
    MeshError,
    MisdirectedError,
)
from protocols import DRIVER, Codec, Envelope, Kind, Message

pytestmark = pytest.mark.ray

_codec = Codec()


class _Peer:
    """A hand-made sender: its own name, incarnation and link, frames bound as asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.incarnation = uuid.uuid4().hex[:16]
        self.link = f"{name}#{self.incarnation}/0"
        self._seq: dict[int, int] = {}

    def frame(self, to: str, incarnation: str, message: Message, *, kind: Kind = Kind.TELL,
              flags: int = 0, correlation_id: str | None = None) -> bytes:  # fmt: skip
        return _codec.encode(Envelope(
            kind=kind, type=message.type_tag or "", sender=self.name, recipient=to,
            payload=_codec.encode_message(message), correlation_id=correlation_id,
            to_incarnation=incarnation, from_incarnation=self.incarnation, flags=flags,
        ))  # fmt: skip

    async def deliver(self, host: Any, frames: list[bytes]) -> list[MeshError]:
        """Deliver `frames` in one call; return the refusals, as errors."""
        seq = self._seq.get(id(host), 0)
        self._seq[id(host)] = seq + 1
        refusals, _ = await deliver(host, self.link, seq, frames)
        return [MeshError.from_wire(error) for _, error in refusals or []]


async def test_an_agent_may_not_take_a_drivers_name(mesh: Mesh) -> None:
    with pytest.raises(ConfigError, match="reserved") as caught:
        await mesh.spawn(Echo, name="edge-x")
    assert "'x'" in (caught.value.hint or "")
    assert "edge-x" not in {agent.name for agent in await mesh.agents()}


async def test_a_frame_for_an_earlier_incarnation_is_refused_after_a_restart(
    mesh: Mesh,
) -> None:
    name = f"bound-{uuid.uuid4().hex[:6]}"
    before = await mesh.spawn(Echo, name=name)
    peer = _Peer("mallory")
    stale = peer.frame(name, before.incarnation, Note(seq=1))
    other = peer.frame(f"{name}-other", before.incarnation, Note(seq=2))
    await mesh.stop(name)
    after = await mesh.spawn(Echo, name=name)
    try:
        assert after.incarnation != before.incarnation
        host = await mesh.actor(name)
        refused = await peer.deliver(host, [stale, other])
        assert [type(error) for error in refused] == [MisdirectedError, MisdirectedError]
        assert before.incarnation in refused[0].message
        stats = await mesh.stats(name)
        assert stats.refusals == {"misdirected": 2}
        letters = await host.dead_letters.remote()
        assert [letter["reason"] for letter in letters] == ["misdirected", "misdirected"]
        # Never handled; a frame bound to this incarnation is.
        assert await peer.deliver(host, [peer.frame(name, after.incarnation, Note(seq=3))]) == []
        notes = await mesh.ask(name, GetNotes(), expect=Notes)
        assert notes.seqs == [3]
    finally:
        await mesh.stop(name)


async def test_driver_rights_come_from_the_flag_not_the_name(mesh: Mesh) -> None:
    name = f"guarded-{uuid.uuid4().hex[:6]}"
    team = await mesh.team({"name": f"team-{name}", "agents": [{"name": name, "agent": Echo}]})
    try:
        host = await mesh.actor(name)
        incarnation = await host.ping.remote()
        named_like_one = _Peer(f"edge-{uuid.uuid4().hex[:8]}")
        refused = await named_like_one.deliver(host, [named_like_one.frame(
            name, incarnation, Note(seq=1))])  # fmt: skip
        assert [type(error) for error in refused] == [AccessDeniedError]
        flagged = _Peer("a-driver-by-its-flag")
        assert await flagged.deliver(host, [flagged.frame(
            name, incarnation, Note(seq=2), flags=DRIVER)]) == []  # fmt: skip
        # The real edge sets the flag: its asks get in.
        assert await mesh.ask(name, Ping(text="hi"), expect=Pong) == Pong(text="hi")
        notes = await mesh.ask(name, GetNotes(), expect=Notes)
        assert notes.seqs == [2]
        assert (await mesh.stats(name)).refusals == {"access": 1}
    finally:
        await team.stop()


async def test_a_reply_from_the_wrong_peer_is_refused_and_the_ask_gets_its_real_answer(
    mesh: Mesh,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    waiter, holder = f"waiter-{suffix}", f"holder-{suffix}"
    waiter_info = await mesh.spawn(Waiter, name=waiter)
    await mesh.spawn(Holder, name=holder)
    try:
        held = asyncio.create_task(mesh.ask(waiter, HoldOn(peer=holder), expect=Held, timeout=60))
        ask_id = None
        while ask_id is None:
            ask_id = (await mesh.ask(holder, WhatAsk(), expect=AskIs)).id
            await asyncio.sleep(0.02)
        mallory = _Peer("mallory")
        forged = Held(text="a forged answer", by=holder)
        refused = await mallory.deliver(await mesh.actor(waiter), [mallory.frame(
            waiter, waiter_info.incarnation, forged, kind=Kind.REPLY,
            correlation_id=ask_id) for _ in range(3)])  # fmt: skip
        assert [type(error) for error in refused] == [MisdirectedError] * 3
        assert "'mallory'" in refused[0].message
        assert (await mesh.stats(waiter)).refusals == {"wrong_peer": 3}
        assert not held.done()
        await mesh.tell(holder, LetGo())
        assert await held == Held(text="the real answer", by=holder)
    finally:
        for name in (waiter, holder):
            await mesh.stop(name)


@contextlib.asynccontextmanager
async def _small_mailboxes() -> AsyncIterator[Mesh]:
    """A second mesh on the session's Ray whose mailboxes hold 1 KiB of payloads."""
    other = Mesh.local(config=MeshConfig(namespace=f"raymesh-bytes-{uuid.uuid4().hex[:6]}",
                                         mailbox_bytes=1024, max_payload_bytes=1024))  # fmt: skip
    try:
        yield other
    finally:
        await other.shutdown()


async def test_a_mailbox_is_bounded_in_bytes_as_well_as_in_messages(mesh: Mesh) -> None:
    async with _small_mailboxes() as small:
        await small.spawn(Slow, name="slow-bytes")
        await small.tell("slow-bytes", Work(seconds=3))  # the worker is busy from here
        payload = len(_codec.encode_message(Work(seconds=0, seq=1)))
        outcomes = await asyncio.gather(
            *(small.tell("slow-bytes", Work(seconds=0, seq=i)) for i in range(2 * 1024 // payload)),
            return_exceptions=True,
        )
        full = [outcome for outcome in outcomes if isinstance(outcome, MailboxFullError)]
        assert full, "the mailbox took more than 1 KiB of payloads"
        assert all(outcome is None or isinstance(outcome, MailboxFullError) for outcome in outcomes)
        assert "mailbox_bytes=1024" in full[0].message
        assert "mailbox_bytes" in (full[0].hint or "")
        taken = len(outcomes) - len(full)
        assert taken * payload <= 1024 < (taken + 1) * payload
        assert (await small.stats("slow-bytes")).mailbox_depth == taken
