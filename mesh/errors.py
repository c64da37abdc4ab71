"""The runtime's errors; the root, the wire errors and the ask's deadline error come from
`protocols.errors`, and are exported here under the same names.

The whole tree, generated from the classes, is the documentation's Errors reference page
(``reference/errors.md``, drawn by ``docs/_gen/errors.py``); it is not drawn by hand here.

A ``DeliveryError`` means the message was not handled to completion; ``HandlerError``
means it was, and the handler failed.
"""

from __future__ import annotations

from typing import ClassVar

from protocols.errors import (
    DeadlineExceededError,
    DecodeError,
    DecodeLimitError,
    DeliveryError,
    EncodeError,
    MeshError,
    MisdirectedError,
    ProtocolError,
    ReplayError,
    SignatureError,
    UnknownMessageTypeError,
)

__all__ = [
    "AccessDeniedError",
    "BaselineError",
    "ClusterError",
    "ClusterUnreachableError",
    "ConfigError",
    "DeadlineExceededError",
    "DeadlockError",
    "DecodeError",
    "DecodeLimitError",
    "DeliveryError",
    "DiedBeforeRunError",
    "DuplicateMessageError",
    "EncodeError",
    "HandlerError",
    "HopLimitError",
    "MailboxFullError",
    "MeshError",
    "MeshNotRunningError",
    "MisdirectedError",
    "NameTakenError",
    "NoHandlerError",
    "OutboxFullError",
    "OutcomeUnknownError",
    "PeerDeadError",
    "PeerNotFoundError",
    "ProtocolError",
    "RegistryUnavailableError",
    "ReplayError",
    "RestartIntensityError",
    "SignatureError",
    "SupervisionError",
    "TlsError",
    "TraceNotFoundError",
    "UnknownMessageTypeError",
]


class PeerNotFoundError(DeliveryError, LookupError):
    """No live agent is registered under the name, role or capability asked for."""


class PeerDeadError(DeliveryError):
    """The recipient died or stopped before it replied.

    The message may or may not have been handled: do not resend blindly. Where the
    sender knows which, it raises one of the two subclasses instead.
    """


class DiedBeforeRunError(PeerDeadError):
    """The recipient was dead or died before its handler could start on the message.

    The message was never sent, never accepted, or dropped from the mailbox unhandled:
    it had no effect, and sending it again (to the successor) is safe.
    """


class OutcomeUnknownError(PeerDeadError):
    """The recipient may have accepted the message and died before replying.

    Its handler may have run in part, in full, or not at all; only an idempotent
    message (or one the receiver deduplicates) is safe to send again.
    """


class MailboxFullError(DeliveryError):
    """The recipient's mailbox was full and it refused the message; nothing was queued."""


class OutboxFullError(MailboxFullError):
    """The sender's outbox to the peer was full (the peer takes messages slower than
    they are sent); nothing was sent."""


class DuplicateMessageError(DeliveryError):
    """The recipient already took a message with this id and did not handle it again.

    The answer to a resent ask (``at_least_once=True``) whose first send was handled,
    by this incarnation or by one before it, but whose reply was lost: the effect
    happened once; its reply is not kept.
    """


class DeadlockError(DeliveryError):
    """Asks waited on each other in a cycle; this one was failed to break it.

    Attributes:
        cycle: The agents in the cycle, in waiting order, the first repeated at the end
            (``["A", "B", "A"]``: A waits for B, which waits for A).
    """

    details: ClassVar[tuple[str, ...]] = ("cycle",)
    conversation_wide: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        cycle: list[str] | tuple[str, ...] = (),
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.cycle = list(cycle)


class NoHandlerError(DeliveryError):
    """The recipient has no handler for the message's type."""


class HopLimitError(DeliveryError):
    """A causal chain of messages passed the configured maximum number of hops."""


class AccessDeniedError(DeliveryError):
    """The recipient's team access rules do not let this sender send it this message type.

    Refused at the recipient, never handled; do not retry.
    """


class RegistryUnavailableError(DeliveryError):
    """The registry did not answer; it is restarting or the cluster is unreachable."""


class HandlerError(MeshError):
    """The recipient's handler raised; the remote exception is described, not re-raised.

    Attributes:
        remote_type: The class name of the exception raised in the handler.
        remote_traceback: The remote traceback as text.
    """

    details: ClassVar[tuple[str, ...]] = ("remote_type", "remote_traceback")

    def __init__(
        self,
        message: str,
        *,
        remote_type: str = "Exception",
        remote_traceback: str = "",
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class SupervisionError(MeshError):
    """A supervisor could not keep its team running."""


class RestartIntensityError(SupervisionError):
    """A team restarted its children more often than its intensity allows, and gave up."""


class ConfigError(MeshError):
    """A setting, an agent class, a name or a team file is not usable."""


class NameTakenError(ConfigError):
    """A live agent is already registered under the name."""


class TraceNotFoundError(MeshError, LookupError):
    """No spans are kept for the trace asked for (unknown id, dropped, or no traces yet)."""


class BaselineError(MeshError):
    """A benchmark's peer baseline (autogen-core, in its own virtualenv) could not be
    installed or did not run; the hint says how to install it by hand or skip it."""


class ClusterError(MeshError):
    """A head could not start or stop, a job could not be submitted, or a job failed."""


class ClusterUnreachableError(ClusterError, ConnectionError):
    """Nothing answers at the cluster address given."""


class MeshNotRunningError(ClusterError):
    """The cluster runs, but no mesh has started in the namespace: a read-only join
    (``raymesh status``, ``trace``, ``deadletters``) found no registry to read."""


class TlsError(ClusterUnreachableError):
    """The cluster and this client disagree on TLS: one side uses it and the other not,
    or the client's certificates are not signed by the cluster's CA."""
