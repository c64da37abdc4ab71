"""Spans exported by OTLP leave the process without secrets.

Spans are recorded as they are (redacting each attribute on the message path would cost
every message) and redacted where they leave: here, when the OpenTelemetry SDK exports
a batch, in its export thread; the span store redacts the traces it hands out. A span's
error text is redacted where it is recorded. Imported only when OTLP export is on.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from mesh.security import redact, redact_data

__all__ = ["RedactingExporter"]


class RedactingExporter(SpanExporter):
    """Masks secrets in spans, then hands them to `inner` (the OTLP exporter).

    Attributes, event attributes and the status text are redacted; ids and times are kept.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export copies of `spans` with their secrets masked."""
        return self._inner.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the inner exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    events = [Event(e.name, redact_data(dict(e.attributes or {})), e.timestamp)
              for e in span.events]  # fmt: skip
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_data(dict(span.attributes or {})),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
