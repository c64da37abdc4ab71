"""Chaos conversation: windowed asks across a supervised team while its agents are killed.

Every ask must end in a reply or a typed error by its deadline (plus a small margin);
one still open `HUNG_AFTER_S` past its deadline is hung. Half the asks take a hop to a
peer first, so deaths also land in the middle of conversations; one in a hundred
stalls past its deadline, so deadline enforcement is measured under the kills too.

The askers behave as the errors tell them to: an ask that fails with
`DiedBeforeRunError` or `PeerNotFoundError` never ran, so it is sent again within its
own deadline, after a pause that starts at `RETRY_AFTER_S` and doubles (jittered) up to
`RETRY_AT_MOST_S`, as a client waiting for a successor should; each try is counted as
a retry. Any other error ends it, `OutcomeUnknownError` above all, since that one may
have run.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from benchmarks.chaos._agents import Work, Worked, Worker
from benchmarks.chaos._figure import Figure, as_ms, as_share, ended_typed
from benchmarks.chaos._support import (
    HUNG_AFTER_S,
    error_name,
    start_team,
    while_killing,
)
from benchmarks.chaos._support import unique as unique_name
from benchmarks.percentiles import percentile
from mesh.edge import Mesh
from mesh.errors import DeadlineExceededError, DiedBeforeRunError, MeshError, PeerNotFoundError

__all__ = ["RETRY_AFTER_S", "RETRY_AT_MOST_S", "ConversationFigures", "chaos_conversation"]

#: The first pause before an ask that never ran is sent again (a successor is on its way).
RETRY_AFTER_S = 0.05
#: The longest pause between two tries.
RETRY_AT_MOST_S = 0.4


@dataclass
class ConversationFigures:
    """How the asks of a chaos conversation ended."""

    asks: int
    agents: int
    kill_every_s: float
    kills: int = 0
    replies: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    hung: int = 0
    untyped: int = 0
    at_deadline: int = 0
    overshoot_p99_ms: float | None = None
    overshoot_max_ms: float | None = None
    seconds: float = 0.0

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = (
            f"chaos conversation: {self.agents} agents, {self.asks:,} asks, "
            f"a kill every {self.kill_every_s:g} s"
        )
        lines = [
            ended_typed(name, self.asks, self.hung, self.untyped),
            Figure(name, "agents killed", str(self.kills)),
            Figure(name, "replies", as_share(self.replies, self.asks)),
        ]
        lines += [Figure(name, f"typed error: {error}", as_share(count, self.asks))
                  for error, count in sorted(self.errors.items(), key=lambda e: -e[1])]  # fmt: skip
        lines += [Figure(name, f"sent again after {error} (never ran)", f"{count:,}")
                  for error, count in sorted(self.retries.items())]  # fmt: skip
        lines += [
            Figure(name, "hung", str(self.hung), "0", self.hung == 0),
            Figure(
                name,
                f"ended at their deadline ({self.at_deadline}): p99 of lateness",
                as_ms(self.overshoot_p99_ms),
                "<= 100 ms",
                self.overshoot_p99_ms is None or self.overshoot_p99_ms <= 100,
            ),
            Figure(
                name,
                "max of lateness at the deadline",
                as_ms(self.overshoot_max_ms),
                "<= 1000 ms",
                self.overshoot_max_ms is None or self.overshoot_max_ms <= 1000,
            ),
            Figure(name, "run time", f"{self.seconds:.1f} s"),
        ]
        return lines


async def chaos_conversation(
    mesh: Mesh,
    *,
    asks: int,
    kill_every_s: float,
    agents: int = 6,
    window: int = 32,
    deadline_s: float = 3.0,
    seed: int = 9,
) -> ConversationFigures:
    """Run `asks` asks, `window` at a time, while a random agent is killed periodically."""
    rng = random.Random(seed)
    names = [unique_name("conv") for _ in range(agents)]
    team = await start_team(mesh, names, Worker)
    figures = ConversationFigures(asks=asks, agents=agents, kill_every_s=kill_every_s)
    overshoots: list[float] = []
    pending = iter(range(asks))

    async def lane() -> None:
        for _ in pending:
            stall = rng.random() < 0.01
            hop = None if stall or rng.random() < 0.5 else rng.choice(names)
            msg = Work(ms=10_000 if stall else rng.uniform(0, 5), peer=hop)
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    _ask_until_it_ran(mesh, rng.choice(names), msg, deadline=started + deadline_s,
                                      retries=figures.retries, rng=rng),
                    deadline_s + HUNG_AFTER_S,
                )  # fmt: skip
                figures.replies += 1
            except MeshError as exc:
                name = error_name(exc)
                figures.errors[name] = figures.errors.get(name, 0) + 1
                if isinstance(exc, DeadlineExceededError):
                    overshoots.append(time.monotonic() - started - deadline_s)
            except TimeoutError:
                figures.hung += 1
            except Exception:
                figures.untyped += 1

    try:
        figures.kills, figures.seconds = await while_killing(
            mesh, names, rng, lane, lanes=window, every_s=kill_every_s
        )
    finally:
        await team.stop()
    figures.at_deadline = len(overshoots)
    p99, worst = percentile(overshoots, 0.99), max(overshoots, default=None)
    figures.overshoot_p99_ms = None if p99 is None else p99 * 1000
    figures.overshoot_max_ms = None if worst is None else worst * 1000
    return figures


async def _ask_until_it_ran(
    mesh: Mesh,
    name: str,
    msg: Work,
    *,
    deadline: float,
    retries: dict[str, int],
    rng: random.Random,
) -> None:
    """Ask, and ask again after each error that says it never ran, until `deadline`."""
    pause = RETRY_AFTER_S
    while True:
        try:
            await mesh.ask(name, msg, timeout=deadline - time.monotonic(), expect=Worked)
            return
        except (DiedBeforeRunError, PeerNotFoundError) as exc:
            if deadline - time.monotonic() <= RETRY_AFTER_S:
                raise  # no time left for another try: it ends as it is
            retries[type(exc).__name__] = retries.get(type(exc).__name__, 0) + 1
            left = deadline - time.monotonic() - RETRY_AFTER_S / 2
            await asyncio.sleep(min(pause * rng.uniform(0.5, 1.0), left))
            pause = min(pause * 2, RETRY_AT_MOST_S)
