"""The root of raymesh's exception tree, the wire errors and the errors of every ask.

``MeshError`` lives here, below the runtime, so that the wire layer can raise errors
that ``mesh`` catches as its own without ``protocols`` importing ``mesh``. So do
``DeliveryError`` and ``DeadlineExceededError``: an ask past its deadline raises the same
class on the in-memory messenger as on the Ray mesh. ``mesh.errors`` adds the runtime's
branches. The whole tree, generated from the classes, is the documentation's Errors
reference page (``reference/errors.md``, drawn by ``docs/_gen/errors.py``).

Every error knows which agent and trace it concerns and carries a hint on what to do.
Errors cross process boundaries as data (``to_wire`` / ``from_wire``), never as pickles
of foreign classes, so an asker always gets the same typed error the remote side raised.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

__all__ = [
    "DeadlineExceededError",
    "DecodeError",
    "DecodeLimitError",
    "DeliveryError",
    "EncodeError",
    "MeshError",
    "MisdirectedError",
    "ProtocolError",
    "ReplayError",
    "SignatureError",
    "UnknownMessageTypeError",
    "describe",
    "error_class",
]

_ERROR_CLASSES: dict[str, type[MeshError]] = {}


class MeshError(Exception):
    """Base of every error raymesh raises.

    Attributes:
        agent: The agent the error concerns, if any.
        trace_id: The trace of the conversation it happened in, if any.
        hint: What to do about it.
    """

    #: Extra constructor keywords a subclass carries; they travel in ``to_wire``.
    details: ClassVar[tuple[str, ...]] = ()
    #: True for errors about the whole conversation (a deadlock, a spent budget): they
    #: pass up through every handler unchanged instead of becoming a HandlerError.
    conversation_wide: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # First come, first kept: a user's class cannot shadow raymesh's own by name.
        _ERROR_CLASSES.setdefault(cls.__name__, cls)

    def __init__(
        self,
        message: str,
        *,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.agent = agent
        self.trace_id = trace_id
        self.hint = hint

    def __str__(self) -> str:
        where = [f"agent={self.agent}"] if self.agent else []
        if self.trace_id:
            where.append(f"trace={self.trace_id}")
        text = f"{self.message} [{', '.join(where)}]" if where else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"agent": self.agent, "trace_id": self.trace_id, "hint": self.hint}
        kwargs.update({name: getattr(self, name) for name in self.details})
        return kwargs

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are lost by Exception's default pickling.
        return (_rebuild, (type(self).__name__, self.message, self._kwargs()))

    def to_wire(self) -> dict[str, Any]:
        """Return the error as plain data for an error reply."""
        return {"code": type(self).__name__, "message": self.message, **self._kwargs()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> MeshError:
        """Rebuild an error sent with `to_wire`; an unknown code becomes a plain `MeshError`."""
        data = dict(data)
        target = _ERROR_CLASSES.get(str(data.pop("code", "")), MeshError)
        message = str(data.pop("message", ""))
        allowed = {"agent", "trace_id", "hint", *target.details}
        return target(message, **{k: v for k, v in data.items() if k in allowed})

    def with_context(self, *, agent: str | None = None, trace_id: str | None = None) -> Self:
        """Fill in the agent and trace where they are still unknown, and return self."""
        self.agent = self.agent or agent
        self.trace_id = self.trace_id or trace_id
        return self


def _rebuild(code: str, message: str, kwargs: dict[str, Any]) -> MeshError:
    return _ERROR_CLASSES.get(code, MeshError)(message, **kwargs)


def describe(exc: BaseException) -> str:
    """Return ``Type: message`` for `exc`, without a `MeshError`'s context and hint.

    For the text of an error that wraps `exc`: the wrapper adds its own context, so the
    cause's ``[agent=…, trace=…]`` would appear twice.
    """
    text = exc.message if isinstance(exc, MeshError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_class(code: str) -> type[MeshError] | None:
    """Return the error class registered under `code` (its class name), if any."""
    return _ERROR_CLASSES.get(code)


class ProtocolError(MeshError):
    """A message or frame could not be encoded or decoded."""


class EncodeError(ProtocolError):
    """A message or envelope cannot be turned into a frame (bad value, too large)."""


class DecodeError(ProtocolError, ValueError):
    """A frame is malformed, too large, too deep, or its payload fails its schema."""


class DecodeLimitError(DecodeError):
    """A frame or payload passes a decoding limit: its size, a length, its objects or depth.

    Refused before it was fully unpacked, so a hostile frame costs the receiver no more
    than the limits allow.

    Attributes:
        limit: The setting that refused it (a `MeshConfig` field, e.g. ``max_objects``).
    """

    details: ClassVar[tuple[str, ...]] = ("limit",)

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.limit = limit


class MisdirectedError(ProtocolError):
    """A frame meant for another agent or incarnation, or a reply from a peer not asked.

    Refused by the receiving host and never handled: a frame binds its recipient and the
    recipient's incarnation (signed, in a signed mesh), and a reply answers an ask only
    if it comes from the agent that was asked.
    """


class UnknownMessageTypeError(DecodeError):
    """A frame names a message type tag that no `Message` class in this process has."""


class SignatureError(ProtocolError):
    """A frame of a signed mesh has no signature, a wrong one, an unknown key or a stale time.

    The frame was refused at the receiving host and never handled.
    """


class ReplayError(SignatureError):
    """A signed frame that the receiving host had already received (a replay)."""


class DeliveryError(MeshError):
    """A message was not delivered to, or not handled by, its recipient."""


class DeadlineExceededError(DeliveryError, TimeoutError):
    """No reply arrived before the ask's deadline."""
