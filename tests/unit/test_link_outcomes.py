"""A link tells a message that never reached a dead peer from one whose outcome is unknown.

The peer is a stand-in whose Ray calls are futures the test completes by hand, so each
test places the peer's death exactly where it wants it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _raycalls import PeerHost
from ray.exceptions import ActorDiedError, ActorUnavailableError

from mesh import AgentInfo, DiedBeforeRunError, MeshConfig, OutcomeUnknownError, PeerDeadError
from mesh.control._catalog import TypeCatalog
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._link import Link, sender_of
from mesh.datapath._typeshare import TypeShare
from protocols import DecodeError
from protocols.calls import WHOLE_CALL

_CATALOG = TypeCatalog()


async def _fetch(tag: str) -> bytes | None:
    return _CATALOG.fetch(tag)


async def _store(tag: str, blob: bytes) -> None:
    _CATALOG.publish(tag, blob)


#: These tests send no message classes; the endpoint still needs a catalog to hand.
_NO_TYPES = TypeShare(fetch=_fetch, store=_store)


def _link(
    peer: PeerHost,
    *,
    max_batch: int = 1,
    carried: list[tuple[list[bytes], str, str]] | None = None,
    edge: bool = False,
    late: list[bytes] | None = None,
) -> Link:
    """An agent's link to `peer` (its own handle goes with its first call), or the edge's."""

    def on_carried(frames: list[bytes], name: str, incarnation: str) -> None:
        assert carried is not None, "no carried replies expected"
        carried.append((frames, name, incarnation))

    def on_late(frame: bytes) -> None:
        assert late is not None, "no late replies expected"
        late.append(frame)

    return Link(link_id="asker#1", peer="critic", incarnation="inc-1", handle=peer,
                reply_to=None if edge else "the asker's host", max_batch=max_batch,
                max_inflight=1, max_outbox=100, on_late=on_late, on_carried=on_carried)  # fmt: skip


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_in_a_failed_call_are_unknown_and_queued_ones_never_ran() -> None:
    peer = PeerHost()
    link = _link(peer)
    in_call, queued = _future(), _future()
    link.send(b"first", in_call)  # leaves at the end of this turn: one call may be in flight
    link.send(b"second", queued)  # waits in the outbox behind it
    assert peer.deliver.calls == []
    await asyncio.sleep(0)
    assert len(peer.deliver.calls) == 1
    peer.die()
    await _settle()
    with pytest.raises(OutcomeUnknownError, match="may or may not have been handled"):
        in_call.result()
    with pytest.raises(DiedBeforeRunError, match="not delivered"):
        queued.result()


async def test_an_accepted_ask_whose_peer_dies_is_unknown() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=2)
    answer = _future()
    link.send(b"tell", _future())
    link.send(b"ask", answer, ask_id="m1")
    await asyncio.sleep(0)
    peer.deliver.calls[0].set_result((None, []))  # accepted into the mailbox, no reply yet
    await _settle()
    assert not answer.done()
    peer.die()  # the link's watch call fails
    await _settle()
    with pytest.raises(OutcomeUnknownError) as caught:
        answer.result()
    assert caught.value.agent == "critic"


async def test_asks_sent_in_one_turn_share_a_call_and_a_lone_one_is_a_request() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=8)
    burst = [_future() for _ in range(3)]
    for i, future in enumerate(burst):
        link.send(b"ask%d" % i, future, ask_id=f"m{i}")
    await asyncio.sleep(0)
    assert [args[2] for args in peer.deliver.args] == [[b"ask0", b"ask1", b"ask2"]]
    assert peer.request.calls == []
    lone = _future()
    link.send(b"ask3", lone, ask_id="m3")  # alone in its turn, though a batch is in flight
    queued = _future()
    await asyncio.sleep(0)
    assert [args[2] for args in peer.request.args] == [b"ask3"]
    assert [args[1] for args in (*peer.deliver.args, *peer.request.args)] == [0, 1]  # in order
    link.send(b"ask4", queued, ask_id="m4")  # a lone ask's call is in flight: it waits
    await asyncio.sleep(0)
    assert len(peer.request.args) == 1
    assert len(peer.deliver.args) == 1
    peer.deliver.calls[0].set_result((None, []))
    await _settle()
    assert [args[2] for args in peer.deliver.args] == [[b"ask0", b"ask1", b"ask2"], [b"ask4"]]
    peer.request.calls[0].set_result(b"reply frame")
    await _settle()
    assert lone.result() == b"reply frame"  # the reply itself, for the sender to decode
    assert not any(f.done() for f in burst)  # their replies come on the peer's own link


async def test_sends_after_the_death_is_known_never_ran() -> None:
    peer = PeerHost()
    link = _link(peer, edge=True)
    peer.die()
    await _settle()
    told, asked = _future(), _future()
    link.send(b"tell", told)
    link.send(b"ask", asked, ask_id="m2")
    requested = link.request(b"ask")
    await _settle()
    for future in (told, asked, requested):
        with pytest.raises(DiedBeforeRunError) as caught:
            future.result()
        assert isinstance(caught.value, PeerDeadError)  # old handlers still catch it
    assert peer.deliver.calls == []
    assert peer.request.calls == []


async def test_a_request_call_that_fails_is_unknown_and_kills_the_link() -> None:
    peer = PeerHost()
    link = _link(peer, edge=True)
    reply = link.request(b"ask")
    await asyncio.sleep(0)  # it leaves at the end of the turn
    peer.request.calls[0].set_exception(ActorDiedError())
    await _settle()
    with pytest.raises(OutcomeUnknownError):
        reply.result()
    assert isinstance(link.dead, PeerDeadError)


class _Registry:
    """Lists one peer incarnation, dead or alive, as a registry does until its lease lapses."""

    def __init__(self, handle: PeerHost) -> None:
        self.handle = handle
        self.answer: asyncio.Future[None] | None = None  # set: lookups wait for it
        self.info = AgentInfo(name="critic", node_id="n", incarnation="inc-1", pid=1,
                              started_at=0.0)  # fmt: skip

    async def lookup(self, name: str, *, unless: str | None = None) -> tuple[AgentInfo, Any] | None:
        if self.answer is not None:
            await self.answer
        if name != "critic":
            return None
        return self.info, None if self.info.incarnation == unless else self.handle


async def test_an_endpoint_refuses_an_incarnation_it_saw_die_for_one_lease() -> None:
    peer = PeerHost()
    lease_s = 0.2
    endpoint = Endpoint(name="asker", incarnation="1", config=MeshConfig(lease_s=lease_s),
                        registry=_Registry(peer), types=_NO_TYPES)  # type: ignore[arg-type]  # fmt: skip
    first = await endpoint.peers.link("critic")
    peer.die()
    await _settle()
    assert first.dead is not None
    with pytest.raises(DiedBeforeRunError, match="no successor has registered"):
        await endpoint.peers.link("critic")
    # After a lease, a peer still listed renewed it: it was unreachable, not dead.
    await asyncio.sleep(lease_s * 1.5)
    again = await endpoint.peers.link("critic")
    assert again is not first
    assert again.dead is None


async def test_a_second_link_to_the_same_incarnation_is_a_sequence_of_its_own() -> None:
    # The receiver orders calls by (link id, seq): a new link reusing the old one's id
    # would restart at seq 0, below what the receiver expects, and go unordered.
    peer = PeerHost()
    endpoint = Endpoint(name="asker", incarnation="1", config=MeshConfig(lease_s=0.05),
                        registry=_Registry(peer), types=_NO_TYPES)  # type: ignore[arg-type]  # fmt: skip
    first = await endpoint.peers.link("critic")
    sent = [_future(), _future()]
    first.send(b"one", sent[0])
    await asyncio.sleep(0)  # the first call leaves at the end of the turn
    first.send(b"two", sent[1])  # queued behind the first call (max_inflight=1)
    await asyncio.sleep(0)
    peer.deliver.calls[0].set_exception(ActorUnavailableError("unreachable", None))
    await _settle()
    assert [type(f.exception()) for f in sent] == [OutcomeUnknownError, DiedBeforeRunError]
    with pytest.raises(DiedBeforeRunError):  # for a lease, as if it had died
        await endpoint.peers.link("critic")
    await asyncio.sleep(0.1)  # the lease lapsed and it is still listed: tried again
    again = await endpoint.peers.link("critic")
    again.send(b"three", _future())
    await asyncio.sleep(0)
    (old_id, old_seq, *_), (new_id, new_seq, *_) = peer.deliver.args
    assert (old_seq, new_seq) == (0, 0)
    assert old_id != new_id
    assert sender_of(old_id) == sender_of(new_id) == ("asker", "1")


async def test_a_lookup_shared_by_two_askers_survives_the_first_giving_up() -> None:
    registry = _Registry(PeerHost())
    registry.answer = _future()
    endpoint = Endpoint(name="asker", incarnation="1", config=MeshConfig(),
                        registry=registry, types=_NO_TYPES)  # type: ignore[arg-type]  # fmt: skip
    impatient = asyncio.create_task(endpoint.peers.link("critic"))
    patient = asyncio.create_task(endpoint.peers.link("critic"))
    await _settle()
    impatient.cancel()  # its deadline passed while the lookup was under way
    await _settle()
    registry.answer.set_result(None)
    link = await patient
    assert link.dead is None
    assert impatient.cancelled()


async def test_sends_that_waited_for_a_lookup_go_before_sends_made_after_it() -> None:
    # Per-pair order is the order of the calls: a sender that asked while the link was
    # being looked up must not be overtaken by one that asks once the link exists.
    peer = PeerHost()
    registry = _Registry(peer)
    registry.answer = _future()
    endpoint = Endpoint(name="asker", incarnation="1", config=MeshConfig(max_inflight=8),
                        registry=registry, types=_NO_TYPES)  # type: ignore[arg-type]  # fmt: skip
    go = _future()

    async def send(frame: bytes, after: asyncio.Future[Any] | None = None) -> None:
        if after is not None:
            await after
        link = await endpoint.peers.link("critic")
        link.send(frame, _future())

    first = asyncio.create_task(send(b"first"))
    await _settle()  # waiting for the lookup
    second = asyncio.create_task(send(b"second", after=go))
    await _settle()
    registry.answer.set_result(None)  # the lookup ends ...
    go.set_result(None)  # ... as the second sender wakes up for its own reasons
    await asyncio.gather(first, second)
    await asyncio.sleep(0)  # they leave at the end of the turn, in one call or two
    assert [frame for args in peer.deliver.args for frame in args[2]] == [b"first", b"second"]


async def test_the_replies_a_batch_call_brings_back_go_to_the_taker_with_their_sender() -> None:
    peer = PeerHost()
    carried: list[tuple[list[bytes], str, str]] = []
    link = _link(peer, max_batch=4, carried=carried)
    told, asked = _future(), _future()
    link.send(b"tell", told)
    link.send(b"ask", asked, ask_id="m1")
    await asyncio.sleep(0)
    assert not link.idle  # a call is out: a reply from the peer must not overtake it
    peer.deliver.calls[0].set_result((None, [b"reply to m1"]))
    await _settle()
    assert carried == [([b"reply to m1"], "critic", "inc-1")]
    assert told.result() is None
    assert not asked.done()  # the taker routes the reply to its ask, not the link
    assert link.idle


async def test_a_batch_call_answered_with_garbage_fails_what_it_carried_and_the_link_goes_on() -> (
    None
):
    peer = PeerHost()
    link = _link(peer, max_batch=4)
    told, later = _future(), _future()
    link.send(b"tell", told)
    await asyncio.sleep(0)
    peer.deliver.calls[0].set_result(b"\xc1")  # not msgpack: a buggy or hostile host
    await _settle()
    with pytest.raises(DecodeError, match="batch call's result is not valid msgpack") as caught:
        told.result()
    assert caught.value.agent == "critic"
    assert link.dead is None
    link.send(b"next", later)
    await asyncio.sleep(0)
    assert peer.deliver.args[1][2] == [b"next"]


async def test_a_batch_call_refused_whole_refuses_every_frame_in_it() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=4)
    told, asked = _future(), _future()
    link.send(b"tell", told)
    link.send(b"ask", asked, ask_id="m1")
    await asyncio.sleep(0)
    refusal = DecodeError("a call must be an array of [link id, sequence number, frames]")
    peer.deliver.calls[0].set_result(([(WHOLE_CALL, refusal.to_wire())], []))
    await _settle()
    for future in (told, asked):
        with pytest.raises(DecodeError, match="a call must be"):
            future.result()


async def test_the_edges_asks_of_one_turn_share_an_asks_call_and_come_back_as_ready() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=8, edge=True)
    asks = [link.request(b"ask%d" % i) for i in range(3)]
    await asyncio.sleep(0)
    assert peer.asks.args == [("asker#1", 0, [b"ask0", b"ask1", b"ask2"])]
    assert peer.request.calls == []
    assert peer.deliver.calls == []  # the edge's asks never go in a batch call
    answers = peer.asks.calls[0]
    answers.push([(1, b"reply 1")])  # the slow first ask holds back none of the others
    await _settle()
    assert asks[1].result() == b"reply 1"
    assert not asks[0].done()
    assert not asks[2].done()
    answers.push([(2, b"reply 2"), (0, b"reply 0")])
    answers.end()
    await _settle()
    assert [ask.result() for ask in asks] == [b"reply 0", b"reply 1", b"reply 2"]
    lone = link.request(b"ask3")  # alone in its turn: a `request` call, whose result it is
    await asyncio.sleep(0)
    assert peer.request.args == [("asker#1", 1, b"ask3")]
    peer.request.calls[0].set_result(b"reply 3")
    await _settle()
    assert lone.result() == b"reply 3"
    assert link.idle


async def test_the_edges_tells_and_asks_go_in_their_order_on_calls_of_their_kind() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=8, edge=True)
    told, later = _future(), _future()
    link.send(b"tell0", told)
    asks = [link.request(b"ask1"), link.request(b"ask2")]
    link.send(b"tell3", later)
    await asyncio.sleep(0)
    assert [args[1:3] for args in peer.deliver.args] == [(0, [b"tell0"])]
    assert peer.asks.args == []  # behind the tell's call, which fills the window of one
    peer.deliver.calls[0].set_result((None, []))
    await _settle()
    assert peer.asks.args == [("asker#1", 1, [b"ask1", b"ask2"])]
    assert [args[1:3] for args in peer.deliver.args] == [(0, [b"tell0"]), (2, [b"tell3"])]
    assert told.result() is None
    assert not any(ask.done() for ask in asks)


async def test_an_asks_call_whose_peer_dies_fails_its_unanswered_asks_as_unknown() -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=8, edge=True)
    asks = [link.request(b"ask0"), link.request(b"ask1")]
    await asyncio.sleep(0)
    peer.asks.calls[0].push([(0, b"reply 0")])
    await _settle()
    peer.die()
    await _settle()
    assert asks[0].result() == b"reply 0"
    with pytest.raises(OutcomeUnknownError) as caught:
        asks[1].result()
    assert caught.value.agent == "critic"
    assert isinstance(link.dead, PeerDeadError)


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        (b"\xc1", "asks call's answers is not valid msgpack"),
        ([(5, b"reply")], "an answer to ask 5 of a call of 2"),
        ([(0, b"reply 0")], "ended an asks call with asks unanswered"),
    ],
    ids=["garbage", "no-such-ask", "cut-short"],
)
async def test_an_asks_call_answered_wrong_fails_its_unanswered_asks_typed_and_the_link_goes_on(
    answers: Any, error: str
) -> None:
    peer = PeerHost()
    link = _link(peer, max_batch=8, edge=True)
    asks = [link.request(b"ask0"), link.request(b"ask1")]
    await asyncio.sleep(0)
    peer.asks.calls[0].push(answers)
    peer.asks.calls[0].end()
    await _settle()
    with pytest.raises(DecodeError, match=error) as caught:
        asks[1].result()
    assert caught.value.agent == "critic"
    assert link.dead is None
    assert link.idle


async def test_an_asks_call_refused_whole_answers_every_ask_with_its_error() -> None:
    peer = PeerHost()
    late: list[bytes] = []
    link = _link(peer, max_batch=8, edge=True, late=late)
    asks = [link.request(b"ask0"), link.request(b"ask1")]
    await asyncio.sleep(0)
    asks[0].cancel()  # its asker gave up: the answer comes late
    peer.asks.calls[0].push([(WHOLE_CALL, b"error frame")])
    peer.asks.calls[0].end()
    await _settle()
    assert asks[1].result() == b"error frame"  # decoded and raised by the endpoint
    assert late == [b"error frame"]
