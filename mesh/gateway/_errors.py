"""The gateway's errors, and every error as an HTTP status and OpenAI's error JSON.

An OpenAI client reads ``{"error": {"message", "type", "code", "param"}}``; the body
also carries the mesh error's class (``type``), its hint and the conversation's trace
id, so a caller sees the same typed error a Python driver would. Every text is redacted:
an error never carries a token or a key.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mesh.errors import (
    AccessDeniedError,
    ConfigError,
    HandlerError,
    MailboxFullError,
    PeerDeadError,
    PeerNotFoundError,
    RegistryUnavailableError,
    TraceNotFoundError,
)
from mesh.security import redact
from protocols import DeadlineExceededError, DecodeError, MeshError

__all__ = [
    "BadRequestError",
    "GatewayError",
    "RequestTooLargeError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnknownModelError",
    "error_body",
    "status_of",
]


class GatewayError(MeshError):
    """An HTTP request to ``raymesh serve`` was refused before it reached an agent."""


class UnauthorizedError(GatewayError):
    """The request has no bearer token, or not one the gateway was given (HTTP 401)."""


class BadRequestError(GatewayError, ValueError):
    """The request body is not valid JSON or not the shape the endpoint takes (HTTP 400)."""


class RequestTooLargeError(GatewayError):
    """The request body is over the serve block's ``max_body_bytes`` (HTTP 413)."""


class TooManyRequestsError(GatewayError):
    """The token made more requests than its rate limit lets it, at this replica (HTTP 429).

    Attributes:
        retry_after_s: Seconds until the token may make its next request.
    """

    details: ClassVar[tuple[str, ...]] = ("retry_after_s",)

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float = 1.0,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.retry_after_s = retry_after_s


class UnknownModelError(GatewayError, LookupError):
    """The request's ``model`` is none of the served team's entry agents (HTTP 404)."""


# Most specific first: the first class an error is an instance of gives its status.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnauthorizedError, 401),
    (RequestTooLargeError, 413),
    (TooManyRequestsError, 429),
    (BadRequestError, 400),
    (UnknownModelError, 404),
    (PeerNotFoundError, 404),
    (TraceNotFoundError, 404),
    (DeadlineExceededError, 504),
    (AccessDeniedError, 403),
    (DecodeError, 400),
    (ConfigError, 400),
    (MailboxFullError, 503),
    (RegistryUnavailableError, 503),
    (PeerDeadError, 502),
    (HandlerError, 502),
)


def status_of(error: BaseException) -> int:
    """Return the HTTP status that answers `error` (500 for anything unforeseen)."""
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 500)


def error_body(error: BaseException) -> dict[str, Any]:
    """Return `error` in OpenAI's error shape, with the mesh error's type, hint and trace.

    An exception that is not a `MeshError` is a bug of the gateway's: its text is not
    shown (it may hold anything), only its class.
    """
    if isinstance(error, MeshError):
        message, hint, trace_id = error.message, error.hint, error.trace_id
        kind = type(error).__name__
    else:
        message, hint, trace_id = "internal error in the gateway", None, None
        kind = "InternalError"
    body: dict[str, Any] = {
        "message": redact(message),
        "type": kind,
        "code": _CODES.get(status_of(error), "internal_error"),
        "param": None,
        "hint": None if hint is None else redact(hint),
        "trace_id": trace_id,
    }
    if isinstance(error, TooManyRequestsError):
        body["retry_after_s"] = error.retry_after_s
    return {"error": body}


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limited",
    502: "agent_failed",
    503: "unavailable",
    504: "deadline_exceeded",
}
