"""Per-pair order across restarts: sequenced asks from A to B while B is killed.

B handles one message at a time and numbers what it handles per incarnation, so a
reorder is visible in its replies: two messages handled by one incarnation whose
positions are not in their sequence order. Asks (not tells) make every gap visible:
a message B never handled, or handled without its reply getting out, ends in a typed
error at A.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

from benchmarks.chaos._agents import Progress, Receiver, Sender, SendNumbered, Sequenced
from benchmarks.chaos._figure import Figure
from benchmarks.chaos._support import Killer, eventually, incarnations, start_team, unique
from mesh.edge import Mesh

__all__ = ["OrderFigures", "order_across_restarts"]


@dataclass
class OrderFigures:
    """How sequenced messages fared across the receiver's restarts."""

    messages: int
    kills: int = 0
    incarnations: int = 0
    handled: int = 0
    reorders: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unreported: int = 0
    seconds: float = 0.0

    @property
    def gaps(self) -> int:
        """Messages without a reply: each one reported to A as a typed error."""
        return sum(self.errors.values())

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"per-pair order: {self.messages:,} asks A->B, B killed {self.kills} times"
        gaps = (
            ", ".join(f"{error} {count}" for error, count in sorted(self.errors.items())) or "none"
        )
        return [
            Figure(name, "handled, in incarnations", f"{self.handled:,} in {self.incarnations}"),
            Figure(
                name, "reorders within an incarnation", str(self.reorders), "0", self.reorders == 0
            ),
            Figure(name, "gaps, each a typed error", f"{self.gaps:,}: {gaps}"),
            Figure(
                name,
                "gaps without an error (hidden)",
                str(self.unreported),
                "0",
                self.unreported == 0,
            ),
        ]


async def order_across_restarts(
    mesh: Mesh, *, messages: int, kills: int, window: int = 8, seed: int = 9
) -> OrderFigures:
    """Send `messages` sequenced asks from A to B, killing B `kills` times on the way."""
    receiver, sender = unique("order-b"), unique("order-a")
    team = await start_team(mesh, [receiver], Receiver, senders=[sender])
    await mesh.spawn(Sender, name=sender)
    figures = OrderFigures(messages=messages)
    killer = Killer(mesh, [receiver], random.Random(seed))
    started = time.monotonic()
    try:
        sending = asyncio.create_task(mesh.ask(
            sender, SendNumbered(peer=receiver, count=messages, window=window, timeout=3.0),
            timeout=max(600.0, messages / 10), expect=Sequenced,
        ))  # fmt: skip
        for k in range(1, kills + 1):
            await _wait_for_progress(mesh, sender, messages * k // (kills + 1), sending)
            killed = await killer.kill_one()

            async def replaced(old: str | None = killed) -> bool:
                found = (await incarnations(mesh)).get(receiver)
                return found is not None and found.incarnation != old

            await eventually(replaced, within=30)
        outcome = await sending
    finally:
        figures.seconds = time.monotonic() - started
        figures.kills = killer.kills
        await mesh.stop(sender)
        await team.stop()
    _tally(figures, outcome)
    return figures


async def _wait_for_progress(
    mesh: Mesh, sender: str, target: int, sending: asyncio.Task[Sequenced]
) -> None:
    while not sending.done():
        done = await mesh.ask(sender, Progress(), timeout=10, expect=Progress)
        if done.done >= target:
            return
        await asyncio.sleep(0.02)


def _tally(figures: OrderFigures, outcome: Sequenced) -> None:
    by_life: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for seq, (life, position, error) in enumerate(
        zip(outcome.lives, outcome.positions, outcome.errors, strict=True)
    ):
        if life:
            by_life[life].append((seq, position))
        elif error:
            figures.errors[error] = figures.errors.get(error, 0) + 1
        else:
            figures.unreported += 1
    figures.incarnations = len(by_life)
    figures.handled = sum(len(handled) for handled in by_life.values())
    for handled in by_life.values():
        positions = [position for _, position in sorted(handled)]
        figures.reorders += sum(1 for a, b in itertools.pairwise(positions) if b <= a)
