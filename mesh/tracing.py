"""Trace context for handlers and structured logs that carry it.

structlog's contextvars hold ``trace_id``, ``span_id`` and ``agent`` while a handler
runs; asyncio copies the context into each task, so concurrent handlers never see each
other's ids. Every log line written inside a handler, by raymesh or by user code using
`get_logger`, carries the three.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog

from mesh.telemetry import redact
from protocols import new_span_id, new_trace_id

__all__ = ["configure_logging", "get_logger", "new_span_id", "new_trace_id", "trace_scope"]

_configured: tuple[str, str] | None = None


def configure_logging(*, fmt: Literal["console", "json"] = "console", level: str = "info") -> None:
    """Configure structlog for this process: readable console lines or JSON, to stderr.

    Calling it again with the same settings does nothing, so every host can call it.
    """
    global _configured  # noqa: PLW0603 -- configuration is process-wide by nature
    if _configured == (fmt, level):
        return
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
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
    # Secrets must not reach a log line, whoever passed them in.
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def get_logger(**initial: Any) -> Any:
    """Return a structlog logger; lines logged in a handler carry its trace and span."""
    return structlog.get_logger(**initial)


@contextmanager
def trace_scope(*, agent: str, trace_id: str, span_id: str) -> Iterator[None]:
    """Bind the trace, span and agent to every log line inside the block."""
    # Set and reset by token rather than with `bound_contextvars`, which copies the
    # whole context to save the old values: that was a tenth of a host's CPU per message.
    tokens = structlog.contextvars.bind_contextvars(agent=agent, trace_id=trace_id, span_id=span_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
