"""Backpressure end to end: a full mailbox makes senders wait (policy "wait"), in order,
up to their deadline; a full outbox refuses at the sender; a producer at 10x its
consumer's speed gets typed refusals only, within a memory bound (the chaos scenario
``overload``, whose full form is ``raymesh chaos --only overload``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from _rel_agents import GetSeqs, Seqs, Slow, Work

from benchmarks.chaos import overload
from mesh import (
    DeadlineExceededError,
    MailboxFullError,
    Mesh,
    MeshConfig,
    OutboxFullError,
)

pytestmark = pytest.mark.ray


@contextlib.asynccontextmanager
async def _waiting_mesh(name: str, **limits: int) -> AsyncIterator[Mesh]:
    """A second mesh on the session's Ray whose mailboxes make senders wait."""
    other = Mesh.local(config=MeshConfig(namespace=f"raymesh-{name}", mailbox_policy="wait",
                                         max_batch=1, lease_s=3.0, **limits))  # fmt: skip
    try:
        yield other
    finally:
        await other.shutdown()


@pytest.fixture
async def waiting(mesh: Mesh) -> AsyncIterator[Mesh]:
    async with _waiting_mesh("wait") as other:
        yield other


async def test_senders_wait_for_room_and_order_holds_past_the_gap_timeout(
    waiting: Mesh,
) -> None:
    await waiting.spawn(Slow, name="slow-order", mailbox_size=2)
    # 30 tells of 0.1 s into a mailbox of 2: the last ones wait about 3 s for room,
    # longer than gap_timeout_s (2 s): a call waiting for room is not a gap.
    count = 30
    sends = [asyncio.create_task(waiting.tell("slow-order", Work(seconds=0.1, seq=i)))
             for i in range(count)]  # fmt: skip
    await asyncio.gather(*sends)  # every one accepted: none refused
    seqs = await waiting.ask("slow-order", GetSeqs(), expect=Seqs, timeout=10)
    stats = await waiting.stats("slow-order")
    assert stats.refused == 0
    assert stats.gaps == 0
    assert stats.waited >= count - 8  # all but the first few waited for room
    # Handled in the order sent (those not handled yet are still queued, in order).
    assert seqs.seqs == list(range(len(seqs.seqs)))


async def test_a_wait_ends_by_the_messages_deadline_with_a_typed_error(waiting: Mesh) -> None:
    await waiting.spawn(Slow, name="slow-deadline", mailbox_size=1)
    await waiting.tell("slow-deadline", Work(seconds=5))  # the worker is busy
    await waiting.tell("slow-deadline", Work(seconds=0))  # the mailbox is full
    start = time.monotonic()
    with pytest.raises((DeadlineExceededError, MailboxFullError)):
        await waiting.ask("slow-deadline", GetSeqs(), timeout=0.5)
    assert time.monotonic() - start < 4  # the worker is busy for 5 s


async def test_a_full_outbox_refuses_at_the_sender_and_leaves_a_dead_letter(mesh: Mesh) -> None:
    async with _waiting_mesh("outbox", max_outbox=4, max_inflight=1) as small:
        await small.spawn(Slow, name="slow-outbox", mailbox_size=1)
        outcomes = await asyncio.gather(
            *(small.tell("slow-outbox", Work(seconds=0.2, seq=i)) for i in range(20)),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, OutboxFullError)]
        # 1 handled, 1 in the mailbox, 1 in the call waiting for room, 4 in the outbox.
        assert len(refused) >= 20 - 8
        assert all(o is None or isinstance(o, OutboxFullError) for o in outcomes)
        letters = [d for d in await small.dead_letters("slow-outbox", limit=100)
                   if d.reason == "mailbox_full"]  # fmt: skip
        assert len(letters) == len(refused)
        assert {d.agent for d in letters} == {small.name}  # recorded by the sender
        assert {d.error_type for d in letters} == {"OutboxFullError"}


#: The full-size form: 30 s per policy, on demand with `pytest -m long`.
FULL_FORM = [pytest.mark.slow, pytest.mark.long]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("seconds", "limits"),
    [(3, {"mailbox_size": 128, "max_outbox": 500}), pytest.param(30, {}, marks=FULL_FORM)],
    ids=["ci", "full"],
)
async def test_overload_is_refused_typed_within_a_memory_bound_and_nothing_deadlocks(
    mesh: Mesh, seconds: float, limits: dict[str, int]
) -> None:
    error, wait = await overload(mesh, seconds=seconds, **limits)
    for run in (error, wait):
        assert run.untyped == 0
        assert run.errors == {}
        ended = run.accepted + run.backpressure + run.unsettled
        assert ended == run.offered
        assert run.answered_s is not None  # both agents answer afterwards: no deadlock
        # Memory, not speed: generous, as the sampling misses short peaks and the
        # machine is shared.
        assert run.growth_mb <= run.bound_mb
    # Refused at the consumer's door under "error"; held, then refused at the sender
    # once the outbox is full, under "wait".
    assert error.mailbox_full > 0
    assert wait.mailbox_full == 0
    assert wait.outbox_full > 0
    assert wait.unsettled > 0
