"""A resend of a message still in flight, to a concurrent durable agent: held, never run twice."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from _hostcalls import deliver, request
from conftest import Spawn

from benchmarks.chaos._agents import Applied, Apply, Ledger
from mesh import DuplicateMessageError, Mesh
from protocols import Codec, Envelope, Kind

pytestmark = pytest.mark.ray

_codec = Codec()


def _ask(recipient: str, msg: Apply, *, to: str) -> Envelope:
    """An ask as a resending sender makes it: the same envelope (id) on every try."""
    return Envelope(kind=Kind.ASK, type=msg.type_tag, sender="resender", recipient=recipient,
                    payload=_codec.encode_message(msg), to_incarnation=to,
                    deadline=time.time() + 60)  # fmt: skip


def _applied(mesh: Mesh, name: str) -> list[int]:
    """The effects in the agent's snapshot, written after every message before its reply."""
    snapshot = json.loads(mesh.config.state_path(name).read_text(encoding="utf-8"))
    applied: list[int] = snapshot["state"]["applied"]
    return applied


async def test_a_resend_after_the_dedup_window_moved_on_waits_for_the_first_and_is_not_run_again(
    mesh: Mesh, spawn: Spawn
) -> None:
    # Before: the window (1,024 ids per sender) forgot the id of a message still being
    # handled, so its resend ran beside it and the effect was applied twice.
    info = await spawn(Ledger, "inflight")
    host = await mesh.actor(info.name)
    first = _ask(info.name, Apply(key=-1, ms=8000), to=info.incarnation)
    first_call = asyncio.ensure_future(request(host, "resender#1", 0, _codec.encode(first)))
    window = mesh.config.dedup_window
    for seq, start in enumerate(range(0, window + 100, 200), start=1):
        tells = [
            _codec.encode(Envelope(kind=Kind.TELL, type=Apply.type_tag, sender="resender",
                                   recipient=info.name, to_incarnation=info.incarnation,
                                   payload=_codec.encode_message(Apply(key=key, ms=0))))
            for key in range(start, start + 200)
        ]  # fmt: skip
        assert await deliver(host, "resender#2", seq - 1, tells) == (None, [])
        # Taken behind the batch, so the mailbox has room for the next one.
        await mesh.ask(info.name, Apply(key=-2 - seq, ms=0), expect=Applied)
    assert not first_call.done(), "the first delivery ended too soon to test its resend"
    again = _codec.decode(await request(host, "resender#3", 0, _codec.encode(first)))
    assert first_call.done(), f"the resend was answered before the first ended: {again}"
    assert mesh._edge.open_reply(_codec.decode(await first_call), Applied) == Applied(key=-1)
    assert again.kind is Kind.ERROR
    assert again.correlation_id == first.id
    with pytest.raises(DuplicateMessageError):
        mesh._edge.open_reply(again, Applied)
    assert _applied(mesh, info.name).count(-1) == 1


async def test_a_resend_while_the_first_runs_is_answered_only_after_it(
    mesh: Mesh, spawn: Spawn
) -> None:
    # Before: "already taken" came at once, while the first delivery still ran; an
    # at-least-once asker counts that answer as handled, so an effect lost with the
    # agent (killed before it finished) would have been acknowledged.
    info = await spawn(Ledger, "inflight-early")
    host = await mesh.actor(info.name)
    first = _ask(info.name, Apply(key=7, ms=2000), to=info.incarnation)
    first_call = asyncio.ensure_future(request(host, "resender#1", 0, _codec.encode(first)))
    await asyncio.sleep(0.5)
    again = _codec.decode(await request(host, "resender#2", 0, _codec.encode(first)))
    assert first_call.done(), "the resend was answered before its first delivery ended"
    with pytest.raises(DuplicateMessageError):
        mesh._edge.open_reply(again, Applied)
    assert _applied(mesh, info.name) == [7]
