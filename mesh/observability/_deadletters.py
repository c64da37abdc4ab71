"""Dead letters: a record of every message that could not be delivered or handled.

Each participant (every agent host, and the driver's edge) keeps its own bounded ring
buffer, filled by one function, `DeadLetterBox.add`, which every refusal path calls.
`Mesh.dead_letters` and ``raymesh deadletters`` collect the buffers of the live hosts.
Keeping them where they happen costs one append on the failure path and nothing on
the hot path, needs no extra actor that could itself be down or full, and lets a
burst of refusals never slow the traffic that is still flowing. The price: a host's
dead letters go with its process when it dies (its successor starts an empty buffer).

A dead letter holds the envelope header (never the payload, which may hold user data
or secrets), why it was refused, the error, and where and when it happened. It is kept
raw (a tuple) and becomes a `DeadLetter` only when read: a flood of bad frames records
one per frame, and building the model and redacting it cost more than refusing the
frame. Every dead letter leaves the box redacted, its error before it is cut to length
(so no half of a key stays).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict

from mesh.security import redact, redact_data
from protocols import Envelope

__all__ = ["REASONS", "DeadLetter", "DeadLetterBox", "collect_dead_letters"]

#: The reason codes raymesh itself records; other checks may add their own.
REASONS: Final = (
    "no_peer",  # the sender found no live agent by that name
    "peer_dead",  # the recipient died or stopped before it took or answered the message
    "mailbox_full",  # the recipient's mailbox (or the sender's outbox) was full
    "decode",  # the frame could not be read (not msgpack, bad header, too large or deep)
    "schema",  # the payload does not match its message type, or the type is unknown
    "no_handler",  # the recipient has no handler for the type
    "handler_crash",  # a tell's handler raised (an ask's asker gets the error instead)
    "expired",  # the deadline passed before the message reached a handler
    "cancelled",  # its asker gave up (before the deadline) while it waited in the mailbox
    "late",  # a reply came after its ask had given up
    "duplicate",  # a message id this agent already took (a retried send)
    "stopped",  # the recipient was stopping and took no more messages
)


class DeadLetter(BaseModel):
    """One message that was not delivered or not handled.

    Attributes:
        agent: The participant that recorded it (where it was refused or lost).
        reason: Why, one of `REASONS` (or a code another check added).
        error_type: The class name of the error, e.g. ``MailboxFullError``.
        error: The error's text, with secrets redacted.
        at: When it was recorded (epoch seconds).
        kind, type, sender, recipient, message_id, correlation_id, trace_id, deadline,
        hops: The envelope header, when the frame could be read that far.
        frame_bytes: The size of the frame, when it was one.
    """

    model_config = ConfigDict(frozen=True)

    agent: str
    reason: str
    error_type: str
    error: str
    at: float
    kind: str | None = None
    type: str | None = None
    sender: str | None = None
    recipient: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    deadline: float | None = None
    hops: int | None = None
    frame_bytes: int | None = None


class _Record(NamedTuple):
    """A dead letter as recorded: raw, unredacted, never handed out as it is."""

    reason: str
    header: dict[str, object] | None
    error_type: str
    error: str
    at: float
    frame_bytes: int | None


#: The most characters of an error text kept raw: twice what a dead letter shows, so that
#: redaction sees a key whole wherever the shown text ends.
_RAW_CHARS = 4000
_SHOWN_CHARS = 2000


class DeadLetterBox:
    """The last `capacity` dead letters of one participant, and how many there were.

    Args:
        agent: The participant's name, stamped on every record.
        capacity: How many records are kept; older ones are dropped (and counted).
    """

    def __init__(self, agent: str, capacity: int) -> None:
        self._agent = agent
        self._letters: deque[_Record] = deque(maxlen=capacity)
        self.total = 0
        self.by_reason: dict[str, int] = {}

    def add(
        self,
        reason: str,
        header: Envelope | None,
        error: BaseException | str,
        *,
        frame_bytes: int | None = None,
    ) -> float:
        """Record one dead letter; return when it was recorded (epoch seconds)."""
        at = time.time()
        self._letters.append(_Record(
            reason,
            None if header is None else _header(header),
            error.__class__.__name__ if isinstance(error, BaseException) else reason,
            str(error)[:_RAW_CHARS],
            at,
            frame_bytes,
        ))  # fmt: skip
        self.total += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        return at

    def newest(self) -> DeadLetter:
        """Return the last dead letter recorded, redacted.

        Raises:
            IndexError: None was recorded.
        """
        return self._letter(self._letters[-1])

    def recent(self, limit: int | None = None) -> list[DeadLetter]:
        """Return the kept dead letters, oldest first (the last `limit` when given), redacted."""
        letters = list(self._letters)
        letters = letters if limit is None else letters[-limit:] if limit > 0 else []
        return [self._letter(record) for record in letters]

    def _letter(self, record: _Record) -> DeadLetter:
        # The error is redacted before it is cut; the other fields as they are.
        fields = redact_data(
            {
                "agent": self._agent,
                "reason": record.reason,
                "error_type": record.error_type,
                **(record.header or {}),
            }
        )
        return DeadLetter(**fields, error=redact(record.error)[:_SHOWN_CHARS], at=record.at,
                          frame_bytes=record.frame_bytes)  # fmt: skip


def _header(env: Envelope) -> dict[str, object]:
    return {
        "kind": str(env.kind),
        "type": env.type,
        "sender": env.sender,
        "recipient": env.recipient,
        "message_id": env.id,
        "correlation_id": env.correlation_id,
        "trace_id": env.trace_id,
        "deadline": env.deadline,
        "hops": env.hops,
    }


async def collect_dead_letters(
    hosts: Iterable[Any],
    local: Iterable[DeadLetter] = (),
    *,
    agent: str | None = None,
    limit: int = 100,
    timeout: float = 5.0,
) -> list[DeadLetter]:
    """Gather the dead letters of `hosts` (host actor handles) and `local` ones.

    A host that does not answer within `timeout` (it died meanwhile, or a handler
    blocks its event loop) is skipped, so that one bad host cannot hold up the rest.
    Returns at most `limit`, the most recent, oldest first; with `agent`, only those
    that concern it (recorded by it, sent by it or addressed to it).
    """
    answers = await asyncio.gather(
        *(asyncio.wait_for(_ask(host), timeout) for host in hosts), return_exceptions=True
    )
    letters = list(local)
    for answer in answers:
        if not isinstance(answer, BaseException):
            letters.extend(DeadLetter.model_validate(row) for row in answer)
    if agent is not None:
        letters = [d for d in letters if agent in (d.agent, d.sender, d.recipient)]
    letters.sort(key=lambda d: d.at)
    return letters[-limit:] if limit > 0 else []


async def _ask(host: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await host.dead_letters.remote()
    return rows
