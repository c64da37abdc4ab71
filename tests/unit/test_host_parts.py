"""The host's parts without Ray: the sequencing gate, frame acceptance and the dispatcher.

Each part is plain asyncio; these tests assemble them as `AgentHost` does, with an
endpoint whose registry and type catalog are stand-ins, and drive them by hand.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from _raycalls import PeerHost

from mesh import Agent, AgentInfo, Context, MeshConfig, handler
from mesh.datapath import _acceptance
from mesh.datapath._acceptance import FrameAcceptance, InboundGuard
from mesh.datapath._dispatch import Dispatcher
from mesh.datapath._durable import Durability
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._handling import HandlerRunner
from mesh.datapath._probe_rounds import Outstanding
from mesh.datapath._replies import Carry, Replies
from mesh.datapath._sequencing import SequencingGate
from mesh.datapath._typeshare import TypeShare
from mesh.errors import (
    DecodeError,
    DiedBeforeRunError,
    HandlerError,
    MailboxFullError,
    MeshError,
    MisdirectedError,
    OutcomeUnknownError,
)
from mesh.observability import AgentStats, get_logger
from protocols import Envelope, ErrorReply, Kind, Message


class Work(Message, type="parts.work/1"):
    n: int = 0
    pad: str = ""


#: What a sender's link binds a frame to: host b's incarnation, and its own (a's).
BOUND: dict[str, Any] = {"to_incarnation": "inc-b", "from_incarnation": "inc-a"}


class Done(Message, type="parts.done/1"):
    n: int = 0


class Worker(Agent):
    """Records the order and overlap of its handlers; each waits until released."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.release.set()

    @handler
    async def on_work(self, msg: Work, ctx: Context) -> Done:
        self.started.append(msg.n)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await self.release.wait()
        self.running -= 1
        if msg.n < 0:
            raise ValueError("negative work")
        return Done(n=msg.n)


class _NoRegistry:
    async def lookup(self, name: str, *, unless: str | None = None) -> None:
        return None


async def _no_fetch(tag: str) -> bytes | None:
    return None


async def _no_store(tag: str, blob: bytes) -> None:
    return None


class _Host:
    """The parts of one host, wired as `AgentHost` wires them."""

    def __init__(self, tmp_path: Path, *, concurrency: int = 1, mailbox_size: int = 100,
                 **settings: Any) -> None:  # fmt: skip
        config = MeshConfig(mailbox_policy="error", **settings)
        self.stats = AgentStats(name="b")
        log = get_logger(agent="b")
        self.endpoint = Endpoint(name="b", incarnation="inc-b", config=config,
                                 registry=_NoRegistry(),  # type: ignore[arg-type]
                                 types=TypeShare(fetch=_no_fetch, store=_no_store),
                                 self_handle=object())  # fmt: skip
        self.codec = self.endpoint.codec
        durability = Durability(None, path=tmp_path / "b.state", window=100, every=1)
        self.replies = Replies(name="b", endpoint=self.endpoint)
        self.stops: list[dict[str, Any]] = []
        self.runner = HandlerRunner(
            info=_info(), config=config, endpoint=self.endpoint, replies=self.replies,
            durability=durability, stats=self.stats, log=log, crash_on_error=False,
            stop_soon=lambda **why: self.stops.append(why),
        )  # fmt: skip
        self.agent = Worker()
        self.runner.agent = self.agent
        self.dispatch = Dispatcher(
            name="b", config=config, concurrency=concurrency, mailbox_size=mailbox_size,
            endpoint=self.endpoint, replies=self.replies, durability=durability,
            stats=self.stats, handle=self.runner.handle, log=log,
        )  # fmt: skip
        self.dispatch.accepting = True
        self.acceptance = FrameAcceptance(
            name="b", config=config, guard=InboundGuard(name="b", config=config),
            endpoint=self.endpoint, dispatcher=self.dispatch, stats=self.stats,
        )  # fmt: skip
        self.endpoint.peers.take_carried = self.acceptance.take_carried

    def ask(self, n: int) -> bytes:
        payload = self.codec.encode_message(Work(n=n))
        ask = Envelope(kind=Kind.ASK, type=Work.type_tag or "", sender="a", recipient="b",
                       payload=payload, deadline=_in(5.0), **BOUND)  # fmt: skip
        return self.codec.encode(ask)

    async def request(self, n: int) -> asyncio.Future[bytes]:
        """Take an ask as a `request` call does; the future is the call's result."""
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        assert await self.acceptance.accept(self.ask(n), "a#inc-a/0", call_waiter=waiter) is None
        return waiter

    def reply_to(self, frame: bytes) -> Message:
        reply = self.codec.decode(frame)
        if reply.kind is Kind.ERROR:
            raise self.codec.decode_message(reply, ErrorReply).to_error()
        return self.codec.decode_message(reply)


def _info() -> AgentInfo:
    return AgentInfo(name="b", node_id="n", incarnation="inc-b", pid=1, started_at=0.0)


def _in(seconds: float) -> float:
    return time.time() + seconds


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# -- the sequencing gate -----------------------------------------------------------------


def _gate(gap_timeout_s: float = 5.0) -> tuple[SequencingGate, AgentStats]:
    stats = AgentStats(name="b")
    return SequencingGate(gap_timeout_s=gap_timeout_s, stats=stats, log=get_logger()), stats


async def _call(gate: SequencingGate, link: str, seq: int, taken: list[int]) -> None:
    if not gate.enter(link, seq):
        await gate.wait_turn(link, seq)
    taken.append(seq)
    gate.release(link, seq)


async def test_the_gate_takes_a_links_calls_in_sequence_order_whatever_their_arrival() -> None:
    gate, stats = _gate()
    taken: list[int] = []
    calls = [asyncio.create_task(_call(gate, "a#1/0", seq, taken)) for seq in (3, 1, 2, 0)]
    await asyncio.gather(*calls)
    assert taken == [0, 1, 2, 3]
    assert stats.gaps == 0


async def test_the_gate_orders_each_link_on_its_own() -> None:
    gate, _ = _gate()
    taken: list[int] = []
    late = asyncio.create_task(_call(gate, "a#1/0", 1, taken))
    await _settle()
    await _call(gate, "a#1/1", 0, taken)  # another link's first call is not held up
    assert taken == [0]
    await _call(gate, "a#1/0", 0, taken)
    await late
    assert taken == [0, 0, 1]


async def test_a_gap_is_reported_and_the_later_calls_go_ahead_in_order() -> None:
    gate, stats = _gate(gap_timeout_s=0.05)
    taken: list[int] = []
    await _call(gate, "a#1/0", 0, taken)
    # Call 1 was lost with a sender that restarted: 2 waits for it, then goes ahead,
    # and the link goes on from there without waiting.
    await _call(gate, "a#1/0", 2, taken)
    assert stats.gaps == 1
    assert gate.enter("a#1/0", 3)
    assert taken == [0, 2]


async def test_a_call_still_being_taken_in_is_no_gap() -> None:
    gate, stats = _gate(gap_timeout_s=0.02)
    assert gate.enter("a#1/0", 0)  # inside: it waits for mailbox room, say
    taken: list[int] = []
    following = asyncio.create_task(_call(gate, "a#1/0", 1, taken))
    await asyncio.sleep(0.1)
    assert taken == []
    gate.release("a#1/0", 0)
    await following
    assert (taken, stats.gaps) == ([1], 0)


# -- frame acceptance ----------------------------------------------------------------------


async def test_a_frame_that_cannot_be_decoded_is_refused_with_a_dead_letter(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    error = await host.acceptance.accept(b"\x93not a frame", "a#inc-a/0")
    assert isinstance(error, DecodeError)
    assert (host.stats.received, host.stats.refused) == (1, 1)
    assert host.endpoint.dead_letters.by_reason == {"decode": 1}
    letter = host.endpoint.dead_letters.recent()[0]
    assert (letter.type, letter.frame_bytes) == (None, 12)


async def test_a_request_that_is_not_an_ask_is_refused(tmp_path: Path) -> None:
    host = _Host(tmp_path)
    payload = host.codec.encode_message(Work())
    tell = host.codec.encode(Envelope(kind=Kind.TELL, type=Work.type_tag or "", sender="a",
                                      recipient="b", payload=payload, **BOUND))  # fmt: skip
    waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    error = await host.acceptance.accept(tell, "a#inc-a/0", call_waiter=waiter)
    assert isinstance(error, DecodeError)
    assert host.endpoint.dead_letters.by_reason == {"decode": 1}
    assert host.dispatch.mailbox.empty()


async def test_a_full_mailbox_refuses_with_a_dead_letter_and_tells_the_batch(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path, mailbox_size=1, refusal_penalty=0)
    refusals = await host.acceptance.take_batch([host.ask(1), host.ask(2)], "a#inc-a/0")
    assert refusals is not None
    assert [index for index, _ in refusals] == [1]
    assert refusals[0][1]["code"] == MailboxFullError.__name__
    assert host.endpoint.dead_letters.by_reason == {"mailbox_full": 1}
    assert host.dispatch.mailbox.qsize() == 1


async def test_a_reply_goes_to_the_ask_waiting_for_it_and_a_late_one_is_a_dead_letter(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    waiting: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
    host.endpoint.pending["ask-1"] = (waiting, "a", "inc-a")

    def reply(to: str, sender: str = "a", **bound: str) -> bytes:
        return host.codec.encode(Envelope(kind=Kind.REPLY, type=Done.type_tag or "",
                                          sender=sender, recipient="b",
                                          payload=host.codec.encode_message(Done()),
                                          correlation_id=to, **{**BOUND, **bound}))  # fmt: skip

    # Replies from another agent, or another incarnation of the one asked, are refused
    # and leave the ask waiting for the real one.
    wrong = [reply("ask-1", sender="c"), reply("ask-1", from_incarnation="inc-old")]
    for frame in wrong:
        assert isinstance(await host.acceptance.accept(frame, "c#inc-c/0"), MisdirectedError)
    assert not waiting.done()
    assert await host.acceptance.accept(reply("ask-1"), "a#inc-a/0") is None
    assert waiting.result().correlation_id == "ask-1"
    assert await host.acceptance.accept(reply("ask-2"), "a#inc-a/0") is None
    assert host.endpoint.dead_letters.by_reason == {"late": 1, "wrong_peer": 2}


async def test_a_reply_to_an_ask_sent_as_a_call_is_refused_from_another_peer(
    tmp_path: Path,
) -> None:
    # Such an ask has no pending entry (the call's result answers it) but is outstanding.
    host = _Host(tmp_path)
    host.endpoint.probes.outstanding["ask-9"] = Outstanding("a", time.time(), "t" * 32, None)

    def reply(sender: str) -> bytes:
        return host.codec.encode(Envelope(kind=Kind.REPLY, type=Done.type_tag or "",
                                          sender=sender, recipient="b",
                                          payload=host.codec.encode_message(Done()),
                                          correlation_id="ask-9", **BOUND))  # fmt: skip

    assert isinstance(await host.acceptance.accept(reply("c"), "c#inc-a/0"), MisdirectedError)
    assert await host.acceptance.accept(reply("a"), "a#inc-a/0") is None  # an earlier attempt's
    assert host.endpoint.dead_letters.by_reason == {"wrong_peer": 1, "late": 1}


@pytest.mark.parametrize(
    "bound",
    [{"recipient": "c"}, {"to_incarnation": "inc-b-before"}, {"to_incarnation": None}],
    ids=["another agent", "another incarnation", "no incarnation"],
)
async def test_a_frame_for_another_recipient_is_refused_never_handled(
    tmp_path: Path, bound: dict[str, Any]
) -> None:
    host = _Host(tmp_path)
    host.dispatch.start()
    env = Envelope(kind=Kind.TELL, type=Work.type_tag or "", sender="a", recipient="b",
                   payload=host.codec.encode_message(Work()), **BOUND)  # fmt: skip
    for field, value in bound.items():
        setattr(env, field, value)
    error = await host.acceptance.accept(host.codec.encode(env), "a#inc-a/0")
    assert isinstance(error, MisdirectedError)
    assert host.stats.refusals == {"misdirected": 1}
    assert host.endpoint.dead_letters.by_reason == {"misdirected": 1}
    await _settle()
    assert host.agent.started == []


async def test_the_mailbox_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    host = _Host(tmp_path, mailbox_bytes=4096, max_payload_bytes=4096, refusal_penalty=0)
    big = Work(n=1, pad="x" * 3000)
    frames = [host.codec.encode(Envelope(kind=Kind.TELL, type=Work.type_tag or "", sender="a",
                                         recipient="b", payload=host.codec.encode_message(big),
                                         **BOUND)) for _ in range(2)]  # fmt: skip
    refusals = await host.acceptance.take_batch(frames, "a#inc-a/0")
    assert [index for index, _ in refusals or []] == [1]
    assert refusals is not None
    error = MeshError.from_wire(refusals[0][1])
    assert isinstance(error, MailboxFullError)
    assert "mailbox_bytes=4096" in error.message
    assert "mailbox_bytes" in (error.hint or "")
    assert host.dispatch.queued_bytes == len(host.codec.encode_message(big))
    host.dispatch.start()
    await _settle()
    assert host.dispatch.queued_bytes == 0


# -- the dispatcher and the handler runner ---------------------------------------------------


async def test_a_serial_agent_handles_one_message_at_a_time_in_mailbox_order(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path, concurrency=1)
    host.agent.release.clear()
    host.dispatch.start()
    replies = [await host.request(n) for n in range(4)]
    await _settle()
    assert (host.agent.started, host.agent.running) == ([0], 1)
    host.agent.release.set()
    assert [host.reply_to(await reply) for reply in replies] == [Done(n=n) for n in range(4)]
    assert host.agent.started == [0, 1, 2, 3]
    assert host.agent.most_at_once == 1
    assert host.stats.handled == 4


async def test_an_agent_of_concurrency_n_runs_n_handlers_at_once(tmp_path: Path) -> None:
    host = _Host(tmp_path, concurrency=3)
    host.agent.release.clear()
    host.dispatch.start()
    replies = [await host.request(n) for n in range(5)]
    await _settle()
    assert host.agent.running == 3
    host.agent.release.set()
    await asyncio.gather(*replies)
    assert host.agent.most_at_once == 3
    assert sorted(host.agent.started) == [0, 1, 2, 3, 4]


async def test_a_handlers_exception_is_the_askers_handler_error(tmp_path: Path) -> None:
    host = _Host(tmp_path)
    host.dispatch.start()
    reply = await host.request(-1)
    with pytest.raises(HandlerError, match="negative work") as raised:
        host.reply_to(await reply)
    assert raised.value.remote_type == "ValueError"
    assert (host.stats.failed, host.stats.handled) == (1, 0)
    # The asker has the error; an ask's failure is no dead letter.
    assert host.endpoint.dead_letters.total == 0


async def test_a_queued_message_whose_asker_gave_up_is_dropped_unhandled(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    host.agent.release.clear()
    host.dispatch.start()
    first = await host.request(1)
    await _settle()
    second = await host.request(2)
    (second_id,) = host.dispatch.queued
    host.dispatch.cancel(second_id)
    host.agent.release.set()
    assert host.reply_to(await first) == Done(n=1)
    await _settle()
    assert host.agent.started == [1]
    assert host.stats.cancelled == 1
    assert host.endpoint.dead_letters.by_reason == {"cancelled": 1}
    assert second.done()  # the request call ends, though its caller has gone


async def test_a_stopping_dispatcher_tells_each_waiting_ask_whether_it_ran(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    host.agent.release.clear()
    host.dispatch.start()
    running = await host.request(1)
    await _settle()
    queued = await host.request(2)
    host.dispatch.stop_taking(crashed=True)
    await host.dispatch.wind_down(normal=False, grace_s=0.1, reason="crashed")
    host.dispatch.answer_waiting("crashed")
    with pytest.raises(OutcomeUnknownError):
        host.reply_to(await running)
    with pytest.raises(DiedBeforeRunError):
        host.reply_to(await queued)


# -- replies carried back by the batch call ----------------------------------------------------


async def test_the_reply_to_an_ask_of_a_batch_goes_back_in_the_calls_carry(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    host.dispatch.start()
    carry = Carry()
    assert await host.acceptance.take_batch([host.ask(7)], "a#inc-a/0", carry) is None
    assert carry.waiting  # taken, not yet answered
    await _settle()
    assert not carry.waiting
    assert [host.reply_to(frame) for frame in carry.frames] == [Done(n=7)]


async def test_a_reply_does_not_overtake_what_the_host_sent_the_asker_before_it(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    asker = PeerHost()
    host.endpoint.peers.learn("a", "inc-a", asker)
    earlier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    host.endpoint.peers._links["a"].send(b"earlier", earlier)
    await asyncio.sleep(0)  # the earlier frame's call is out, not yet returned
    host.dispatch.start()
    carry = Carry()
    await host.acceptance.take_batch([host.ask(7)], "a#inc-a/0", carry)
    await _settle()
    assert carry.frames == []  # it would have reached the asker before the earlier frame
    asker.deliver.calls[0].set_result((None, []))
    await _settle()
    earlier_call, (reply,) = (args[2] for args in asker.deliver.args)
    assert earlier_call == [b"earlier"]
    assert host.reply_to(reply) == Done(n=7)


async def test_an_answer_still_to_come_when_the_call_returns_takes_the_link(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    asker = PeerHost()
    host.endpoint.peers.learn("a", "inc-a", asker)
    host.agent.release.clear()  # the handler waits past the call's last turn
    host.dispatch.start()
    carry = Carry()
    await host.acceptance.take_batch([host.ask(7)], "a#inc-a/0", carry)
    await _settle()
    host.replies.uncarry(carry)
    host.agent.release.set()
    await _settle()
    assert carry.frames == []
    ((reply,),) = (args[2] for args in asker.deliver.args)  # the reply went on the link
    assert host.reply_to(reply) == Done(n=7)


def _reply_from(host: _Host, sender: str, incarnation: str, to: str, *, kind: Kind = Kind.REPLY,
                correlation: str | None = None) -> bytes:  # fmt: skip
    return host.codec.encode(Envelope(
        kind=kind, type=Done.type_tag or "", sender=sender, recipient="b",
        payload=host.codec.encode_message(Done(n=1)), correlation_id=correlation or to,
        deadline=_in(5.0), to_incarnation="inc-b", from_incarnation=incarnation,
    ))  # fmt: skip


async def test_carried_replies_answer_their_asks_and_pass_the_checks_of_any_frame(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    loop = asyncio.get_running_loop()
    asked_c: asyncio.Future[Envelope] = loop.create_future()
    asked_d: asyncio.Future[Envelope] = loop.create_future()
    host.endpoint.pending["m1"] = (asked_c, "c", "inc-c")
    host.endpoint.pending["m2"] = (asked_d, "d", "inc-d")
    frames = [
        _reply_from(host, "c", "inc-c", "m2"),  # c answering what d was asked
        _reply_from(host, "c", "inc-c", "m1", kind=Kind.TELL),  # not a reply
        b"\xc1not msgpack",
        _reply_from(host, "c", "inc-c", "m1"),
    ]
    host.acceptance.take_carried(frames, "c", "inc-c")
    assert asked_c.result().correlation_id == "m1"
    assert not asked_d.done()
    assert host.endpoint.dead_letters.by_reason == {"wrong_peer": 1, "decode": 2}
    assert host.stats.received == 4


# -- deadlock probes -------------------------------------------------------------------------


async def test_a_probe_is_forwarded_along_the_asks_a_handler_waits_on(tmp_path: Path) -> None:
    host = _Host(tmp_path)
    peer = PeerHost()
    host.endpoint.peers.learn("c", "inc-c", peer)
    # Message m1, running here, waits on ask x1 to c; a probe about m1 follows it there.
    host.endpoint.probes.waits("x1", Outstanding("c", 10.0, "t-b", parent="m1"))
    path = [("a", "origin", 1.0, "t-a")]
    cycles = host.endpoint.probes.forward([("m1", path)], lambda ask: [ask])
    assert cycles == []
    assert peer.probe.args == [([("x1", [*path, ("b", "x1", 10.0, "t-b")])],)]
    assert host.endpoint.probes.sent == 1


async def test_a_probe_back_at_its_origin_closes_a_cycle_and_fails_the_youngest_ask(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path)
    host.endpoint.probes.waits("origin", Outstanding("a", 5.0, "t-b", parent="m1"))
    path = [("b", "origin", 5.0, "t-b"), ("a", "y1", 7.0, "t-a")]
    ((victim, error),) = host.endpoint.probes.forward([("m1", path)], lambda ask: [ask])
    assert victim == ("a", "y1", 7.0, "t-a")
    assert error.cycle == ["b", "a", "b"]


async def test_a_handlers_waiting_ask_is_probed_after_the_delay_then_at_twice_its_age(
    tmp_path: Path,
) -> None:
    host = _Host(tmp_path, probe_delay_s=0.1)
    peer = PeerHost()
    host.endpoint.peers.learn("c", "inc-c", peer)
    probes = host.endpoint.probes
    # An ask from outside a handler (no parent message) can close no cycle: never probed.
    probes.waits("lone", Outstanding("c", time.time(), "t-0", parent=None))
    probes.waits("x1", Outstanding("c", time.time(), "t-1", parent="m1"))
    await asyncio.sleep(0.06)
    assert peer.probe.args == []  # younger than the delay
    await asyncio.sleep(0.1)
    assert [probe[0] for (batch,) in peer.probe.args for probe in batch] == ["x1"]
    # Probed again at twice its age each time (at 0.2 s, 0.4 s), not every delay.
    await asyncio.sleep(0.1)
    assert len(peer.probe.args) == 2
    await asyncio.sleep(0.1)
    assert len(peer.probe.args) == 2  # at 0.36 s: every delay would have made it 3
    await asyncio.sleep(0.1)
    assert [probe[0] for (batch,) in peer.probe.args for probe in batch] == ["x1"] * 3
    # A new ask is probed one delay after it was made, however far off the next repeat.
    probes.waits("x2", Outstanding("c", time.time(), "t-2", parent="m2"))
    await asyncio.sleep(0.16)
    assert [probe[0] for probe in peer.probe.args[-1][0]] == ["x2"]
    probes.close()


async def test_a_batch_of_bad_frames_pays_its_tarpit_in_slices_and_good_frames_pay_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tarpit is served as the batch goes, after each slice of work, not in one
    # burst at its end: the host's loop is never held by the flood for longer than a
    # slice. The pauses are recorded, not slept (a sleep(0) still yields).
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(_acceptance.asyncio, "sleep", recorded)
    host = _Host(tmp_path, mailbox_size=5000, refusal_penalty=4)
    garbage = [bytes([0xC1]) * 40] * 3000  # 0xc1 is never valid msgpack
    refusals = await host.acceptance.take_batch(garbage, "a#inc-a/0")
    assert refusals is not None
    assert len(refusals) == 3000
    paid = [pause for pause in pauses if pause > 0]
    assert len(paid) >= 2, pauses  # in slices: more than one pause, each after a slice
    assert sum(paid) <= _acceptance.MAX_TARPIT_S

    pauses.clear()
    assert await host.acceptance.take_batch([host.ask(n) for n in range(300)], "a#inc-a/1") is None
    assert not any(pauses)  # it may yield between slices, but never pauses
