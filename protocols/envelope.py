"""The envelope: the fixed header every message travels in, and its payload as raw bytes.

The payload stays encoded until a handler needs it, so that a relay or a router can
forward a frame without paying for validation, and a bad payload fails in the handler's
host (as a typed error to the asker) rather than in the transport.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["DRIVER", "Envelope", "Kind", "new_message_id", "new_span_id", "new_trace_id"]

#: The flag of a frame sent by a driver (the edge client): what access rules call `edge`.
DRIVER = 1
#: Every flag this frame version knows; a frame with another bit set is refused.
KNOWN_FLAGS = DRIVER


class Kind(StrEnum):
    """What an envelope is for; replies and errors answer an ask by `correlation_id`."""

    TELL = "tell"
    ASK = "ask"
    REPLY = "reply"
    ERROR = "error"
    #: A piece of a streamed ask's answer, before its reply (see `protocols.stream`).
    CHUNK = "chunk"


# Ids come from the OS's cryptographic source, so that nobody who saw some ids can
# guess the next (a guessed message id could pre-empt a real one in a receiver's
# dedup window). One os.urandom call makes 4 KiB of ids, kept as ready hex strings:
# an id then costs a list pop, which the GIL makes atomic, so the control lane's
# thread and the loop's never get the same one. A forked child drops the pools, so
# that it cannot repeat its parent's ids.
_CHUNK = 4096
_pool_32: list[str] = []
_pool_16: list[str] = []


def _fresh() -> None:
    _pool_32.clear()
    _pool_16.clear()


os.register_at_fork(after_in_child=_fresh)


def _refill(pool: list[str], digits: int) -> None:
    text = os.urandom(_CHUNK).hex()
    pool.extend([text[at : at + digits] for at in range(0, len(text), digits)])


def _hex_32() -> str:
    while True:
        try:
            return _pool_32.pop()
        except IndexError:
            _refill(_pool_32, 32)


def new_trace_id() -> str:
    """Return a W3C trace id: 32 lowercase hex digits, never all zero."""
    while (trace := _hex_32()) == _ZERO_TRACE:
        pass  # pragma: no cover - one chance in 2**128
    return trace


def new_span_id() -> str:
    """Return a W3C span id: 16 lowercase hex digits, never all zero."""
    while True:
        try:
            span = _pool_16.pop()
        except IndexError:
            _refill(_pool_16, 16)
            continue
        if span != _ZERO_SPAN:
            return span


def new_message_id() -> str:
    """Return a unique message id (128 random bits)."""
    return _hex_32()


_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


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
        to_incarnation: The incarnation of the recipient this frame is for: another
            incarnation of the same name refuses it. None only before a sender knows it.
        from_incarnation: The sender's own incarnation; a reply must come from the
            incarnation that was asked.
        flags: `DRIVER` when a driver sent it; signed with the rest of the header.
        signed_at: When the frame was signed (epoch seconds), set on decode by a signing
            codec; None for unsigned frames. Not a header field: the signature carries it.
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
    to_incarnation: str | None = None
    from_incarnation: str | None = None
    flags: int = 0
    signed_at: float | None = None

    def remaining(self, now: float | None = None) -> float | None:
        """Return the seconds left before the deadline (negative once past), or None."""
        if self.deadline is None:
            return None
        return self.deadline - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        """Return True when the deadline has passed."""
        left = self.remaining(now)
        return left is not None and left <= 0
