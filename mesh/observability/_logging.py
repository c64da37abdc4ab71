"""Trace context for handlers, structured logs that carry it, and secrets kept out of logs.

While a handler runs, one context variable holds its ``agent``, ``trace_id`` and
``span_id``; asyncio copies the context into each task, so concurrent handlers never
see each other's ids. A log processor adds the three to every line written inside a
handler, by raymesh or by user code using `get_logger`. Setting one variable costs far
less than binding three of structlog's contextvars for every message (measured: that
was 7 to 10% of a busy host's CPU); the ids are only copied into lines written.

Every line is redacted (`mesh.security.redact_data`, nested fields included): structlog's
lines by a processor after the traceback is rendered, and the standard library's
(``openai``, ``httpx``, ``ray`` and every other library's loggers) by a log record
factory, which sees each record once, whatever logger or handler it goes to, handlers
added later included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Literal

import structlog

from mesh.security import redact, redact_data
from protocols import new_span_id, new_trace_id

__all__ = [
    "configure_logging",
    "get_logger",
    "new_span_id",
    "new_trace_id",
    "redact_standard_logging",
    "trace_context",
    "trace_scope",
]

_configured: tuple[str, str] | None = None
_scope: ContextVar[tuple[str, str, str] | None] = ContextVar("raymesh_log_scope", default=None)


def configure_logging(*, fmt: Literal["console", "json"] = "console", level: str = "info") -> None:
    """Configure structlog for this process: readable console lines or JSON, to stderr.

    Calling it again with the same settings does nothing, so every host can call it.
    """
    global _configured  # noqa: PLW0603 -- configuration is process-wide by nature
    if _configured == (fmt, level):
        return
    redact_standard_logging()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_secrets,  # after the traceback is text: exceptions can hold keys too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = (fmt, level)


def _redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Secrets must not reach a log line, whoever passed them in, however deep. An object
    # (an exception, a model) is rendered by its repr anyway: redacted as that text.
    plain = {k: v if isinstance(v, _DATA) else repr(v) for k, v in event.items()}
    redacted: MutableMapping[str, Any] = redact_data(plain)
    return redacted


_DATA = (str, int, float, bool, type(None), Mapping, list, tuple)


def redact_standard_logging() -> None:
    """Make every standard library log record of this process carry no secret.

    The record's message is rendered and redacted when the record is made (only for
    records a logger lets through: the level check comes first), and so is the text of
    its exception and stack, which handlers then print as they are. Installed once.
    """
    if logging.getLogRecordFactory() in _INSTALLED:
        return
    factory = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the template alone (its arguments may hold keys)
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    _INSTALLED.append(redacting)
    logging.setLogRecordFactory(redacting)


#: The factories this module installed (one, unless another library replaced it since).
_INSTALLED: list[Callable[..., logging.LogRecord]] = []
_FORMATTER = logging.Formatter()


def get_logger(**initial: Any) -> Any:
    """Return a structlog logger; lines logged in a handler carry its trace and span."""
    return structlog.get_logger(**initial)


def _add_trace_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    scope = _scope.get()
    if scope is not None:
        for key, value in zip(("agent", "trace_id", "span_id"), scope, strict=True):
            event.setdefault(key, value)
    return event


def trace_context() -> dict[str, str]:
    """Return the agent, trace and span that log lines written here now carry."""
    scope = _scope.get()
    return {} if scope is None else dict(zip(("agent", "trace_id", "span_id"), scope, strict=True))


class trace_scope:  # noqa: N801 -- a context manager, named like contextlib's
    """Make every log line inside the block carry the trace, span and agent."""

    __slots__ = ("_ids", "_token")

    def __init__(self, *, agent: str, trace_id: str, span_id: str) -> None:
        self._ids = (agent, trace_id, span_id)
        self._token: Token[tuple[str, str, str] | None] | None = None

    def __enter__(self) -> None:
        self._token = _scope.set(self._ids)

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _scope.reset(self._token)
