"""The envelope: the fixed header every message travels in, and its payload as raw bytes.

The payload stays encoded until a handler needs it, so that a relay or a router can
forward a frame without paying for validation, and a bad payload fails in the handler's
host (as a typed error to the asker) rather than in the transport.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Envelope", "Kind", "new_message_id", "new_span_id", "new_trace_id"]


class Kind(StrEnum):
    """What an envelope is for; replies and errors answer an ask by `correlation_id`."""

    TELL = "tell"
    ASK = "ask"
    REPLY = "reply"
    ERROR = "error"


# Ids are made for every message, so they come from a per-process generator seeded
# from the OS rather than from an `os.urandom` system call each (5% of a host's CPU).
# A child process after fork reseeds, so that two processes never share a sequence.
_random = random.Random(os.urandom(32))
_ids = itertools.count()
_prefix = os.urandom(8).hex()


def _reseed() -> None:
    global _prefix  # noqa: PLW0603 -- the generator's state is process-wide by nature
    _random.seed(os.urandom(32))
    _prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_reseed)


def new_trace_id() -> str:
    """Return a W3C trace id: 32 lowercase hex digits, never all zero."""
    return f"{_random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """Return a W3C span id: 16 lowercase hex digits, never all zero."""
    return f"{_random.getrandbits(64) or 1:016x}"


def new_message_id() -> str:
    """Return a unique message id: a random per-process prefix and a counter (32 hex)."""
    return f"{_prefix}{next(_ids):016x}"


@dataclass(slots=True)
class Envelope:
    """A message header and its encoded payload.

    Attributes:
        kind: tell, ask, reply or error.
        type: The payload's message type tag.
        sender: Name of the sending agent (or the edge client).
        recipient: Name of the receiving agent.
        payload: The message body, msgpack-encoded.
        trace_id: The conversation this message belongs to (W3C, 32 hex).
        span_id: The span of handling this message (W3C, 16 hex).
        parent_span_id: The span of the handler that sent it; None at the edge.
        correlation_id: For replies and errors, the id of the ask they answer.
        deadline: Absolute time (epoch seconds) after which nobody waits for the outcome.
        hops: How many handlers this causal chain has passed through.
        chain: The agents waiting, in order, in this causal chain (for deadlock detection).
        id: Unique message id.
        budget: On asks and tells, what the conversation may still spend, per unit
            (``{"tokens": 900, "usd": 0.02}``; a missing unit is unlimited); on replies
            and errors, what handling the ask spent. None when nobody counts.
    """

    kind: Kind
    type: str
    sender: str
    recipient: str
    payload: bytes
    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str | None = None
    correlation_id: str | None = None
    deadline: float | None = None
    hops: int = 0
    chain: tuple[str, ...] = ()
    id: str = field(default_factory=new_message_id)
    budget: dict[str, float] | None = None

    def remaining(self, now: float | None = None) -> float | None:
        """Return the seconds left before the deadline (negative once past), or None."""
        if self.deadline is None:
            return None
        return self.deadline - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        """Return True when the deadline has passed."""
        left = self.remaining(now)
        return left is not None and left <= 0
