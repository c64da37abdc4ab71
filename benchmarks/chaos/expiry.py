"""Late and expired: replies after their ask's deadline, and requests already past theirs.

Late replies: an `Asker` agent asks a `Worker` to block its event loop for longer than
each ask's deadline. The handler cannot be cut short (a blocked loop runs no deadline
watchdog), so every reply is sent after its asker gave up: each ask must end in
`DeadlineExceededError` by its deadline, and each reply must be dropped and counted
by the asker as a ``late`` dead letter, never taken for the answer to another ask.

Expired requests, two ways: asks sent while the agent's loop is blocked, which wait
in its mailbox past their deadline (the common case: a slow agent with a queue), and
tells whose deadline had passed before they were sent (a clock that runs ahead, or a
frame that sat in some queue). Neither may be handled; each must leave an ``expired``
dead letter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from benchmarks.chaos._agents import Asked, Asker, AskLate, Freeze, Work, Worked, Worker
from benchmarks.chaos._figure import Figure, as_share
from benchmarks.chaos._support import error_name, eventually, unique
from mesh.edge import Mesh
from mesh.errors import MeshError
from protocols import Envelope, Kind
from protocols.calls import open_result, pack_call

__all__ = ["ExpiryFigures", "late_and_expired"]

#: How long the slow agent blocks its loop, and the (shorter) deadline of each ask.
HOLD_S, DEADLINE_S = 0.3, 0.1


@dataclass
class ExpiryFigures:
    """How late replies and expired requests were dropped, counted and kept unhandled."""

    asks: int
    late_outcomes: dict[str, int] = field(default_factory=dict)
    late_dead_letters: int = 0
    late_counted: int = 0
    queued: int = 0
    queued_outcomes: dict[str, int] = field(default_factory=dict)
    stale: int = 0
    expired_handled: int = 0
    expired_dead_letters: int = 0

    @property
    def expired(self) -> int:
        """Requests that were past their deadline when the agent reached them."""
        return self.queued + self.stale

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        late = f"late replies: {self.asks} asks of {DEADLINE_S:g} s to a handler of {HOLD_S:g} s"
        timed_out = self.late_outcomes.get("DeadlineExceededError", 0)
        others = ", ".join(
            f"{e} {n}"
            for e, n in sorted(self.late_outcomes.items())
            if e != "DeadlineExceededError"
        )
        expired = (
            f"expired requests: {self.queued} asks expired in a mailbox, "
            f"{self.stale} tells sent expired"
        )
        queued_typed = self.queued_outcomes.get("DeadlineExceededError", 0)
        return [
            Figure(
                late,
                "asks ended by DeadlineExceededError",
                f"{as_share(timed_out, self.asks)}{f' ({others})' if others else ''}",
                "100%",
                timed_out == self.asks,
            ),
            Figure(
                late,
                "late replies dropped, as 'late' dead letters of the asker",
                as_share(self.late_dead_letters, self.asks),
                "100%",
                self.late_dead_letters == self.asks,
            ),
            Figure(
                late,
                "late replies in the asker's stats (late_replies)",
                as_share(self.late_counted, self.asks),
                "100%",
                self.late_counted == self.asks,
            ),
            Figure(
                expired,
                "expired asks ended by DeadlineExceededError",
                as_share(queued_typed, self.queued),
                "100%",
                queued_typed == self.queued,
            ),
            Figure(
                expired,
                "expired requests handled",
                str(self.expired_handled),
                "0",
                self.expired_handled == 0,
            ),
            Figure(
                expired,
                "expired requests left an 'expired' dead letter",
                as_share(self.expired_dead_letters, self.expired),
                "100%",
                self.expired_dead_letters == self.expired,
            ),
        ]


async def late_and_expired(mesh: Mesh, *, asks: int) -> ExpiryFigures:
    """Make `asks` replies come late, then send `asks` requests that expire before handling."""
    figures = ExpiryFigures(asks=asks)
    await _late_replies(mesh, figures)
    await _expired_requests(mesh, figures)
    return figures


async def _late_replies(mesh: Mesh, figures: ExpiryFigures) -> None:
    slow, asker = unique("slow"), unique("asker")
    await mesh.spawn(Worker, name=slow)
    await mesh.spawn(Asker, name=asker)
    try:
        asked = await mesh.ask(
            asker,
            AskLate(peer=slow, count=figures.asks, hold_s=HOLD_S, timeout=DEADLINE_S),
            timeout=figures.asks * (HOLD_S + 1) + 30,
            expect=Asked,
        )
        figures.late_outcomes = asked.outcomes

        async def late_letters() -> int:
            letters = await mesh.dead_letters(asker, limit=figures.asks * 4)
            return sum(1 for d in letters if d.agent == asker and d.reason == "late")

        async def all_late() -> bool:
            return await late_letters() >= figures.asks

        await eventually(all_late, within=10)  # the last one may still be on its way
        figures.late_dead_letters = await late_letters()
        figures.late_counted = (await mesh.stats(asker)).late_replies
    finally:
        await mesh.stop(asker)
        await mesh.stop(slow)


async def _expired_requests(mesh: Mesh, figures: ExpiryFigures) -> None:
    name = unique("expiring")
    await mesh.spawn(Worker, name=name)
    try:
        before = await mesh.stats(name)
        await _queued_behind_a_block(mesh, name, figures)
        await _sent_expired(mesh, name, figures)
        await mesh.ask(name, Work(ms=0), timeout=10, expect=Worked)  # after all of them

        async def all_dropped() -> bool:
            stats = await mesh.stats(name)
            return stats.expired + stats.cancelled - before.expired - before.cancelled >= (
                figures.expired
            )

        await eventually(all_dropped, within=10)
        after = await mesh.stats(name)
        # Handled: the block and the last ask; anything more was an expired request.
        figures.expired_handled = after.handled - before.handled - 2
        letters = await mesh.dead_letters(name, limit=figures.expired * 4)
        figures.expired_dead_letters = sum(
            1 for d in letters if d.agent == name and d.reason == "expired"
        )
    finally:
        await mesh.stop(name)


async def _queued_behind_a_block(mesh: Mesh, name: str, figures: ExpiryFigures) -> None:
    """Send asks while the agent's loop is blocked: they wait past their deadlines."""
    blocking = asyncio.create_task(mesh.ask(name, Freeze(seconds=1.5), timeout=10))
    host = await mesh.actor(name)

    async def blocked() -> bool:
        health = await host.health.remote()  # the control lane answers while it is blocked
        return bool(health["loop_lag_s"] > 0.1)

    await eventually(blocked, within=10)
    outcomes = await asyncio.gather(*(_outcome(mesh, name) for _ in range(figures.asks)))
    for outcome in outcomes:
        figures.queued_outcomes[outcome] = figures.queued_outcomes.get(outcome, 0) + 1
    figures.queued = figures.asks
    await blocking


async def _outcome(mesh: Mesh, name: str) -> str:
    try:
        await mesh.ask(name, Work(ms=0), timeout=DEADLINE_S)
    except MeshError as exc:
        return error_name(exc)
    return "reply"


async def _sent_expired(mesh: Mesh, name: str, figures: ExpiryFigures) -> None:
    """Send tells whose deadline passed a second before they were sent."""
    codec = mesh.config.codec()  # signed, if the mesh is
    host = await mesh.actor(name)
    link = unique("stale")  # a link of its own, which names the incarnation it sends from
    incarnation = await host.ping.remote()
    frames = [
        codec.encode(
            Envelope(
                kind=Kind.TELL,
                type=Work.type_tag or "",
                sender=mesh.name,
                recipient=name,
                payload=codec.encode_message(Work(ms=0)),
                deadline=time.time() - 1,
                to_incarnation=incarnation,
                from_incarnation=link,
            )
        )
        for _ in range(figures.asks)
    ]
    refused, _ = open_result(await host.deliver.remote(pack_call(f"{mesh.name}#{link}", 0, frames)))
    assert not refused, f"expired tells refused at the door: {refused[:3]}"
    figures.stale = len(frames)
