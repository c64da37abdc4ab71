"""At-least-once with dedup under kills: every acknowledged effect applied exactly once.

The chaos conversation's run (a supervised team, asks in a window, a random agent
killed now and then), with asks sent ``at_least_once=True``: an ask whose agent died
(before or after taking it) or was not registered yet is sent again, with the same
message id, to the successor, until the ask's deadline. Each agent (`Ledger`) applies
an effect per message to a durable ``State``, snapshotted after every message before
the reply leaves, together with the ids of the messages handled; the successor starts
from that snapshot and drops a resend whose id it holds (``DuplicateMessageError``).

At the end every agent's snapshot is read from disk (the agents stopped first, so
nothing changes under the reading), and each ask is judged by how it ended:

- **acknowledged**: a reply, or ``DuplicateMessageError`` (a resend of a message the
  agent had already handled and snapshotted: the reply was lost with its incarnation,
  the effect was not). The effect must be in the durable state: one that is not is
  **lost** (target 0).
- **ended in an error** (``DeadlineExceededError`` above all: no live agent took the
  message, or none finished it, before the deadline): never acknowledged, so not
  lost whatever the state holds; the asker was told the outcome is unknown, not that
  it failed. Such an effect may still be in the state (an incarnation handled it and
  snapshotted it but died before replying, and no resend reached its successor in
  time; or it was handled just as the asker gave up), and the figures say how many
  were. These are the effects a caller that tries again under a *new* message id
  would apply twice: only the same id is deduplicated.

An effect found twice in the state is **applied twice** (target 0), whatever its ask's
outcome. "Durable" means the snapshot survives the agent's process (written with
``os.replace``, not fsynced): a machine's crash is not part of this scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.chaos._agents import Applied, Apply, Ledger
from benchmarks.chaos._figure import Figure, as_share, ended_typed
from benchmarks.chaos._support import HUNG_AFTER_S, error_name, start_team, unique, while_killing
from mesh.edge import Mesh
from mesh.errors import DuplicateMessageError, MeshError

__all__ = ["ExactlyOnceFigures", "exactly_once"]


@dataclass
class ExactlyOnceFigures:
    """How at-least-once asks ended, and what the agents' durable state holds of them."""

    asks: int
    agents: int
    kill_every_s: float
    kills: int = 0
    replies: int = 0
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    hung: int = 0
    untyped: int = 0
    retries: int = 0
    applied_once: int = 0
    lost: int = 0
    applied_twice: int = 0
    failed_but_applied: int = 0
    dropped_by_dedup: int = 0
    seconds: float = 0.0

    @property
    def acknowledged(self) -> int:
        """Asks answered with a reply or with DuplicateMessageError (handled before)."""
        return self.replies + self.duplicates

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = (
            f"at-least-once + dedup: {self.agents} durable agents, {self.asks:,} asks, "
            f"a kill every {self.kill_every_s:g} s"
        )
        failed = sum(self.errors.values())
        lines = [
            ended_typed(name, self.asks, self.hung, self.untyped),
            Figure(name, "agents killed", str(self.kills)),
            Figure(
                name,
                "tries again with the same message id (agent dead or not yet back)",
                f"{self.retries:,}",
            ),
            Figure(name, "acknowledged", as_share(self.acknowledged, self.asks)),
            Figure(
                name,
                "acknowledged by DuplicateMessageError (handled before, reply lost)",
                f"{self.duplicates:,}",
            ),
        ]
        lines += [Figure(name, f"ended in {error}", as_share(count, self.asks))
                  for error, count in sorted(self.errors.items(), key=lambda e: -e[1])]  # fmt: skip
        lines += [
            Figure(name, "effects applied exactly once", as_share(self.applied_once, self.asks)),
            Figure(
                name,
                "effects lost (acknowledged, not in the durable state)",
                str(self.lost),
                "0",
                self.lost == 0,
            ),
            Figure(
                name, "effects applied twice", str(self.applied_twice), "0", self.applied_twice == 0
            ),
            Figure(
                name,
                "ended in an error, yet applied (never acknowledged: not lost)",
                f"{self.failed_but_applied:,} of {failed:,}",
            ),
            Figure(
                name,
                "resends dropped by dedup (stats of the incarnations alive at the end)",
                f"{self.dropped_by_dedup:,}",
            ),
            Figure(name, "run time", f"{self.seconds:.1f} s"),
        ]
        return lines


async def exactly_once(
    mesh: Mesh,
    *,
    asks: int,
    kill_every_s: float,
    agents: int = 6,
    window: int = 32,
    deadline_s: float = 3.0,
    seed: int = 9,
) -> ExactlyOnceFigures:
    """Run `asks` at-least-once asks, `window` at a time, while agents are killed.

    Each ask applies the effect numbered by its index at a random agent of the team.
    """
    rng = random.Random(seed)
    names = [unique("ledger") for _ in range(agents)]
    team = await start_team(mesh, names, Ledger)
    figures = ExactlyOnceFigures(asks=asks, agents=agents, kill_every_s=kill_every_s)
    acknowledged: set[int] = set()
    pending = iter(range(asks))

    async def lane() -> None:
        for key in pending:
            msg = Apply(key=key, ms=rng.uniform(0, 5))
            ask = mesh.ask(rng.choice(names), msg, timeout=deadline_s, expect=Applied,
                           at_least_once=True)  # fmt: skip
            try:
                await asyncio.wait_for(ask, deadline_s + HUNG_AFTER_S)
                figures.replies += 1
                acknowledged.add(key)
            except DuplicateMessageError:
                figures.duplicates += 1
                acknowledged.add(key)
            except MeshError as exc:
                error = error_name(exc)
                figures.errors[error] = figures.errors.get(error, 0) + 1
            except TimeoutError:
                figures.hung += 1
            except Exception:
                figures.untyped += 1

    retries_before = mesh.retries
    try:
        figures.kills, figures.seconds = await while_killing(
            mesh, names, rng, lane, lanes=window, every_s=kill_every_s
        )
        figures.retries = mesh.retries - retries_before
        figures.dropped_by_dedup = await _dropped_by_dedup(mesh, names)
    finally:
        await team.stop()
    applied = _read_effects(mesh, names)
    figures.applied_once = sum(1 for count in applied.values() if count == 1)
    figures.applied_twice = sum(1 for count in applied.values() if count > 1)
    figures.lost = sum(1 for key in acknowledged if key not in applied)
    figures.failed_but_applied = sum(1 for key in applied if key not in acknowledged)
    return figures


async def _dropped_by_dedup(mesh: Mesh, names: list[str]) -> int:
    # A killed incarnation's stats die with it: this counts the survivors' drops only.
    dropped = 0
    for name in names:
        with contextlib.suppress(MeshError):  # being restarted just now
            dropped += (await mesh.stats(name)).duplicates
    return dropped


def _read_effects(mesh: Mesh, names: list[str]) -> Counter[int]:
    """Return how often each effect is in the agents' last snapshots, and delete them."""
    applied: Counter[int] = Counter()
    for name in names:
        path = mesh.config.state_path(name)
        with contextlib.suppress(FileNotFoundError):  # it never handled a message
            applied.update(json.loads(path.read_text(encoding="utf-8"))["state"]["applied"])
        # The names are this run's own: nobody starts from them again. A write cut
        # short by a kill leaves its temp file behind.
        for leftover in (path, *path.parent.glob(f".{path.name}.*.tmp")):
            leftover.unlink(missing_ok=True)
    return applied
