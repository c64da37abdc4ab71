"""A participant's dead letters recorded and logged: every refusal and loss goes through here."""

from __future__ import annotations

from typing import Any

from mesh.config import MeshConfig
from mesh.errors import MeshError, OutboxFullError, PeerDeadError, PeerNotFoundError
from mesh.observability import DeadLetterBox
from protocols import Codec, Envelope, ProtocolError

__all__ = ["DeadLetterLog"]


class DeadLetterLog:
    """Records dead letters in a participant's box and logs them, a line per reason a second."""

    def __init__(self, box: DeadLetterBox, *, config: MeshConfig, log: Any) -> None:
        self._box = box
        self._log_them = config.log_dead_letters
        self._log = log
        self._logged: dict[str, float] = {}

    def record(
        self,
        reason: str,
        header: Envelope | None,
        error: BaseException | str,
        *,
        frame_bytes: int | None = None,
    ) -> None:
        """Record a message that was not delivered or not handled, and log it.

        The one place every refusal goes through (the host's, the sender's, and any
        check another module adds), so that nothing is dropped without a record.
        """
        at = self._box.add(reason, header, error, frame_bytes=frame_bytes)
        # One log line per reason a second at most: under overload or a flood of bad
        # frames, logging each one would cost more than refusing it (all are recorded).
        last = self._logged.get(reason, 0.0)
        if self._log_them and at - last >= 1.0:
            self._logged[reason] = at
            letter = self._box.newest()
            self._log.warning("dead letter", reason=reason, message_type=letter.type,
                              sender=letter.sender, recipient=letter.recipient,
                              trace_id=letter.trace_id, error=letter.error,
                              total=self._box.by_reason[reason])  # fmt: skip

    def undelivered(self, env: Envelope, error: MeshError) -> None:
        """Record a send that failed as only its sender can see it.

        Refusals by a live recipient (mailbox full, a bad frame) are recorded by the
        recipient.
        """
        if isinstance(error, PeerNotFoundError):
            self.record("no_peer", env, error)
        elif isinstance(error, PeerDeadError):
            self.record("peer_dead", env, error)
        elif isinstance(error, OutboxFullError):
            self.record("mailbox_full", env, error)

    def late(self, codec: Codec, frame: bytes) -> None:
        """Record a reply frame that came back after its ask had ended."""
        try:
            reply = codec.decode(frame)
        except ProtocolError as exc:
            self.record("decode", None, exc, frame_bytes=len(frame))
            return
        self.record("late", reply, f"reply to {reply.correlation_id} after its ask ended")
