"""The inbound sequencing gate: calls from one sender link are taken in sequence order.

Ray does not order calls to an async actor, so each call carries its link's sequence
number and waits here until the calls before it have been let in. A call that waits
longer than the gap timeout goes ahead and the gap is reported: the missing calls were
lost with a sender that restarted, and waiting on would stall the link for good.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mesh.observability import AgentStats

__all__ = ["LINKS_REMEMBERED", "SequencingGate"]

#: Sender links whose next sequence number a gate remembers.
LINKS_REMEMBERED = 4096


class SequencingGate:
    """Lets the calls of each sender link in, one sequence number after the other.

    A call `enter`s (or, early, waits its turn), is taken in, then is `release`-d; the
    next number of its link is let in at the release. Taking in may wait (for mailbox
    room), so calls of a link may be inside the gate at the same time, in order.

    Args:
        gap_timeout_s: How long a call waits for the calls before it.
        stats: Where gaps are counted.
        log: Where gaps are reported.
    """

    def __init__(self, *, gap_timeout_s: float, stats: AgentStats, log: Any) -> None:
        self._gap_timeout_s = gap_timeout_s
        self._stats = stats
        self._log = log
        # Next sequence number expected per sender link, the most recently used last.
        self._expected: dict[str, int] = {}
        # The calls that arrived early, waiting for their turn.
        self._early: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._inside: set[tuple[str, int]] = set()  # admitted calls still being taken in

    def enter(self, link_id: str, seq: int) -> bool:
        """Let call `seq` of `link_id` in if it is its turn; False if it must `wait_turn`."""
        if seq <= self._expected.get(link_id, 0):
            self._inside.add((link_id, seq))
            return True
        return False

    async def wait_turn(self, link_id: str, seq: int) -> None:
        """Let in call `seq` of `link_id`, which came early: at its turn, or after a gap."""
        expected = self._expected.get(link_id, 0)
        early = asyncio.get_running_loop().create_future()
        self._early[(link_id, seq)] = early
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(early), self._gap_timeout_s)
                    break
                except TimeoutError:
                    if early.done():
                        break  # its turn came in the same loop turn as the timeout
                    # A call ahead that waits for mailbox room is not a gap: wait on.
                    if (link_id, self._expected.get(link_id, 0)) not in self._inside:
                        raise
        except TimeoutError:
            self._stats.gaps += 1
            self._log.warning("gap in a sender's sequence; later messages go ahead",
                              link=link_id, missing=list(range(expected, seq)))  # fmt: skip
        finally:
            del self._early[(link_id, seq)]
        self._inside.add((link_id, seq))

    def release(self, link_id: str, seq: int) -> None:
        """Mark call `seq` of `link_id` taken in, and let the next one of its link in."""
        self._inside.discard((link_id, seq))
        following = max(self._expected.pop(link_id, 0), seq + 1)
        self._expected[link_id] = following  # the most recently used last
        if len(self._expected) > LINKS_REMEMBERED:
            # Every link a sender ever opened has an entry: forget the longest unused. If
            # it sends again, its call waits `gap_timeout_s` and goes ahead, in order.
            del self._expected[next(iter(self._expected))]
        early = self._early.get((link_id, following))
        if early is not None and not early.done():
            early.set_result(None)
