"""Deadline arithmetic shared by the patterns: one absolute deadline, timeouts derived from it.

A pattern takes an optional ``timeout`` and also honours its messenger's deadline; the
earlier wins. Each ask gets the time left, so nothing a pattern starts outlives it.
"""

from __future__ import annotations

import time

from protocols.errors import MeshError
from protocols.messenger import Messenger
from protocols.patterns.errors import PatternTimeoutError


def deadline_of(messenger: Messenger, timeout: float | None) -> float | None:
    """Return the earlier of the messenger's deadline and ``now + timeout``."""
    deadline = messenger.deadline
    if timeout is not None:
        own = time.time() + timeout
        deadline = own if deadline is None else min(deadline, own)
    return deadline


def time_left(messenger: Messenger, deadline: float | None, *, what: str) -> float | None:
    """Return the seconds left before `deadline`, or None when there is none.

    Raises:
        PatternTimeoutError: The deadline has passed.
    """
    if deadline is None:
        return None
    left = deadline - time.time()
    if left <= 0:
        raise PatternTimeoutError(
            f"{what}: the deadline passed",
            agent=messenger.agent,
            trace_id=messenger.trace_id,
            hint="give the pattern a longer timeout, or fewer rounds or attempts",
        )
    return left


def reraise_if_conversation_wide(exc: BaseException) -> None:
    """Re-raise errors about the whole conversation (a deadlock, a spent budget).

    A pattern records an agent's failure and carries on, but such an error means
    carrying on is pointless, so it passes up unchanged.
    """
    if isinstance(exc, MeshError) and exc.conversation_wide:
        raise exc
