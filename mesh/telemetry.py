"""OpenTelemetry spans for handled messages, kept by the mesh and exported by OTLP if asked.

Every handled message is a span named ``agent.<name> <type>`` whose ids are the
envelope's own: its span id is the envelope's ``span_id`` and its parent the sender's
span, so the tree a trace viewer shows is exactly the tree of messages. Spans leave
the message path through the SDK's batch processor (a background thread) to the
mesh's span store, an actor that keeps a bounded window of recent spans for
``raymesh trace``; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (and the OTLP exporter
installed) they also go to a collector, so Jaeger, Tempo or any OTLP backend shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from protocols import Envelope

__all__ = ["flush", "handler_span", "mark_outcome", "redact", "setup", "span_to_dict"]

_forced_span_id: ContextVar[int | None] = ContextVar("raymesh_span_id", default=None)
_forced_trace_id: ContextVar[int | None] = ContextVar("raymesh_trace_id", default=None)
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_SECRET = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|[A-Za-z0-9_-]{32,})")


class _EnvelopeIds(RandomIdGenerator):
    """Span ids from envelopes, so OpenTelemetry's tree is the tree of messages."""

    def generate_span_id(self) -> int:
        forced = _forced_span_id.get()
        return forced if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        # Asked for when a span has no parent: the edge minted the trace id already.
        forced = _forced_trace_id.get()
        return forced if forced is not None else super().generate_trace_id()


class _StoreExporter(SpanExporter):
    """Sends batches of finished spans to the mesh's span store actor."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._store.add.remote([span_to_dict(s) for s in spans])
        except Exception:  # the store restarting must never hurt an agent
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def setup(store: Any, *, service: str) -> None:
    """Configure this process's tracer once: to the span store, and to OTLP if asked."""
    global _tracer, _provider  # noqa: PLW0603 -- one provider per process, as OpenTelemetry has it
    if _tracer is not None:
        return
    provider = TracerProvider(
        resource=Resource.create({"service.name": "raymesh", "raymesh.process": service}),
        id_generator=_EnvelopeIds(),
    )
    provider.add_span_processor(
        BatchSpanProcessor(_StoreExporter(store), schedule_delay_millis=500)
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            pass  # documented: install opentelemetry-exporter-otlp-proto-http
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("raymesh")
    _provider = provider


def flush(timeout_s: float = 2.0) -> None:
    """Export the spans still batched (before a host stops)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


@contextmanager
def handler_span(
    env: Envelope, *, agent: str, role: str | None, model: str | None
) -> Iterator[trace.Span]:
    """Run the block in the span of handling `env` (a no-op span when tracing is off)."""
    if _tracer is None:
        yield trace.INVALID_SPAN
        return
    # The sender's span is the parent; at the edge there is none, and the span is a root
    # whose trace id the id generator takes from the envelope.
    trace_id = int(env.trace_id, 16)
    parent = Context()
    if env.parent_span_id:
        sender = SpanContext(
            trace_id,
            int(env.parent_span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        parent = trace.set_span_in_context(NonRecordingSpan(sender))
    token = _forced_span_id.set(int(env.span_id, 16))
    trace_token = _forced_trace_id.set(trace_id)
    try:
        span = _tracer.start_span(
            f"agent.{agent} {env.type}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "raymesh.agent": agent,
                "raymesh.role": role or "",
                "raymesh.model": model or "",
                "raymesh.message.type": env.type,
                "raymesh.message.kind": env.kind.value,
                "raymesh.message.bytes": len(env.payload),
                "raymesh.sender": env.sender,
                "raymesh.hops": env.hops,
            },
        )
    finally:
        _forced_span_id.reset(token)
        _forced_trace_id.reset(trace_token)
    with trace.use_span(span, end_on_exit=True, record_exception=False):
        yield span


def mark_outcome(span: trace.Span, error: BaseException | None) -> None:
    """Record how handling ended: ok, or the error's type and message (redacted)."""
    if error is None:
        span.set_attribute("raymesh.outcome", "ok")
        return
    span.set_attribute("raymesh.outcome", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, redact(str(error))[:500]))


def redact(text: str) -> str:
    """Replace what looks like an API key or token with ``[redacted]``."""
    return _SECRET.sub("[redacted]", text)


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """Return a finished span as plain data for the span store and ``raymesh trace``."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": f"{context.trace_id:032x}" if context else "",
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_span_id": f"{parent.span_id:016x}" if parent and parent.span_id else None,
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "error": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
    }
