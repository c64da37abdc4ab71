"""Spans for handled messages: recorded cheaply, kept by the mesh, exported by OTLP if asked.

Every handled message is a span named ``agent.<name> <type>`` whose ids are the
envelope's own: its span id is the envelope's ``span_id`` and its parent the sender's
span, so the tree a trace viewer shows is exactly the tree of messages.

A span is recorded as a small record in the host (a few microseconds) and batched off
the message path to the mesh's span store, an actor that keeps a bounded window of
recent spans for ``raymesh trace``. A batch travels as one msgpack blob of rows
(`Recorder.flush`), which the store keeps as it came and reads only when asked: shipped as
Python dicts, Ray pickled every span in the host and unpickled it in the store, most of
what tracing cost (measured: windowed asks 0.87x of untraced, 0.95x with nothing shipped).
Each span's row is packed when the span ends, and the batch is those bytes joined: the
spans waiting for the next shipment (thousands, at full speed) are bytes, which the
garbage collector never walks. Held as records, they were walked by every collection
their allocations set off: 2.5 us a message, measured in isolation.
Creating full OpenTelemetry SDK spans for every message halved message throughput here
(measured), so the SDK is used only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: then
each span is also an SDK span with the same ids, exported by the SDK's OTLP exporter to
Jaeger, Tempo or any OTLP backend.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgpack

from mesh.security import redact, redact_data
from protocols import Envelope, UsageQuery

_current: ContextVar[SpanRecord | None] = ContextVar("raymesh_span", default=None)


#: Seconds between a host's shipments of recorded spans to the span store.
FLUSH_S = 0.5

#: The runtime's own asks (its bookkeeping, not a conversation of the user's): their spans
#: carry ``raymesh.bookkeeping``, and the span store's "most recent trace" skips them.
BOOKKEEPING_TYPES: frozenset[str | None] = frozenset({UsageQuery.type_tag})


@dataclass(slots=True)
class SpanRecord:
    """One handled message, as plain data."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    attributes: dict[str, Any]
    end_ns: int = 0
    status: str = "UNSET"
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    otel: Any = None

    def as_row(self) -> tuple[Any, ...]:
        """Return the span as a row of `SPAN_FIELDS`, the form it travels in."""
        row: tuple[Any, ...] = _ROW(self)
        return row


#: A span row's fields, in order; a span as `Mesh.trace` returns it has these keys.
SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "name", "start_ns", "end_ns",
               "status", "error", "attributes", "events")  # fmt: skip
_ROW = attrgetter(*SPAN_FIELDS)


#: How a span row is packed (`Recorder`): a value msgpack cannot pack goes as text.
_PACKING: dict[str, Any] = {"use_bin_type": True, "default": str}


def unpack_spans(blob: bytes) -> list[list[Any]]:
    """Return the rows of a batch a `Recorder` shipped; none if it is not one."""
    try:
        rows = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except (ValueError, TypeError):  # msgpack's format errors are ValueErrors
        return []
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, list) and len(r) == len(SPAN_FIELDS)]


def span_dict(row: Sequence[Any]) -> dict[str, Any]:
    """Return a span row as the dict `Mesh.trace` returns."""
    return dict(zip(SPAN_FIELDS, row, strict=True))


def add_to(**amounts: float) -> None:
    """Add to numeric attributes of the span being handled (e.g. ``llm.tokens_in=12``)."""
    record = _current.get()
    if record is None:
        return
    for key, amount in amounts.items():
        record.attributes[key] = record.attributes.get(key, 0) + amount
        if record.otel is not None:
            record.otel.set_attribute(key, record.attributes[key])


def add_event(name: str, **attributes: Any) -> None:
    """Record an event (an LLM call, a tool call) on the span being handled, redacted.

    Redacted here, where the host's own secrets (its environment's, its secrets file's)
    are known: the span store that hands the span out knows only its own. Events are
    per model or tool call, not per message.
    """
    record = _current.get()
    if record is None:
        return
    attributes = redact_data(attributes)
    record.events.append({"name": name, "attributes": attributes})
    if record.otel is not None:
        record.otel.add_event(name, attributes)


class Recorder:
    """Records a host's spans and ships them in batches to the span store.

    Args:
        store: The span store actor handle.
        service: This process's name in exported traces.
        capacity: Spans held while the store is slow; beyond it the oldest are dropped.
    """

    def __init__(self, store: Any, *, service: str, capacity: int = 10_000) -> None:
        self._store = store
        self._pending: deque[bytes] = deque(maxlen=capacity)  # each a span's packed row
        self._packer = msgpack.Packer(**_PACKING)
        self.dropped = 0
        self._otel = _OtlpBridge(service) if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else None

    def span(self, env: Envelope, *, agent: str, role: str | None, model: str | None) -> _Scope:
        """Return the context manager that runs a block as the span of handling `env`.

        A plain class, not a generator: it runs for every handled message, where a
        generator-based context manager cost as much again as the record itself.
        """
        record = SpanRecord(
            trace_id=env.trace_id,
            span_id=env.span_id,
            parent_span_id=env.parent_span_id,
            name=f"agent.{agent} {env.type}",
            start_ns=time.time_ns(),
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
        if env.type in BOOKKEEPING_TYPES:
            record.attributes["raymesh.bookkeeping"] = True
        return _Scope(self, record)

    def _kept(self, record: SpanRecord) -> None:
        record.end_ns = time.time_ns()
        record.otel = None
        try:
            row = self._packer.pack(record.as_row())
        except (ValueError, TypeError):  # too deep or too large for msgpack: not kept
            self.dropped += 1
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(row)

    @staticmethod
    def outcome(record: SpanRecord, error: BaseException | None) -> None:
        """Record how handling ended: ok, or the error's type and (redacted) message."""
        if error is None:
            record.attributes["raymesh.outcome"] = "ok"
            return
        record.attributes["raymesh.outcome"] = type(error).__name__
        record.status = "ERROR"
        record.error = redact(str(error))[:500]
        if record.otel is not None:
            record.otel.set_attribute("raymesh.outcome", type(error).__name__)
            _fail(record.otel, record.error)

    async def run(self) -> None:
        """Ship the recorded spans every half second, off the message path."""
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        """Ship what is recorded now (also called when the host stops)."""
        if not self._pending:
            return
        count = len(self._pending)
        # The rows are packed already: the blob is a msgpack array of them.
        batch = self._packer.pack_array_header(count) + b"".join(self._pending)
        self._pending.clear()
        try:
            self._store.add.remote(batch, count)
        except Exception:  # the store restarting must never hurt an agent
            self.dropped += count
        if self._otel is not None:
            self._otel.flush()


class _Scope:
    """The span of one handled message: current while its block runs, kept when it ends."""

    __slots__ = ("_otel_scope", "_record", "_recorder", "_token")

    def __init__(self, recorder: Recorder, record: SpanRecord) -> None:
        self._recorder = recorder
        self._record = record
        self._token: Token[SpanRecord | None] | None = None
        self._otel_scope: Any = None

    def __enter__(self) -> SpanRecord:
        record = self._record
        self._token = _current.set(record)
        bridge = self._recorder._otel
        if bridge is not None:
            self._otel_scope = bridge.span(record)
            record.otel = self._otel_scope.__enter__()
        return record

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._otel_scope is not None:
                self._otel_scope.__exit__(*exc)
        finally:
            assert self._token is not None
            _current.reset(self._token)
            self._recorder._kept(self._record)


def _fail(span: Any, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, message))


class _OtlpBridge:
    """The same spans as OpenTelemetry SDK spans, with the envelope's ids, sent by OTLP."""

    def __init__(self, service: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        forced: ContextVar[tuple[int, int] | None] = ContextVar("raymesh_ids", default=None)

        class EnvelopeIds(RandomIdGenerator):
            def generate_span_id(self) -> int:
                ids = forced.get()
                return ids[1] if ids else super().generate_span_id()

            def generate_trace_id(self) -> int:
                ids = forced.get()
                return ids[0] if ids else super().generate_trace_id()

        self._forced = forced
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": "raymesh", "raymesh.process": service}),
            id_generator=EnvelopeIds(),
        )
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            self._tracer = None  # documented: install opentelemetry-exporter-otlp-proto-http
            return
        from mesh.observability._export_redaction import RedactingExporter

        exporter = RedactingExporter(OTLPSpanExporter())  # spans leave without secrets
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("raymesh")

    @contextmanager
    def span(self, record: SpanRecord) -> Iterator[Any]:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        if self._tracer is None:
            yield None
            return
        trace_id = int(record.trace_id, 16)
        parent = Context()
        if record.parent_span_id:
            sender = SpanContext(trace_id, int(record.parent_span_id, 16), is_remote=True,
                                 trace_flags=TraceFlags(TraceFlags.SAMPLED))  # fmt: skip
            parent = trace.set_span_in_context(NonRecordingSpan(sender))
        token = self._forced.set((trace_id, int(record.span_id, 16)))
        try:
            span = self._tracer.start_span(record.name, context=parent, kind=SpanKind.SERVER,
                                           attributes=record.attributes)  # fmt: skip
        finally:
            self._forced.reset(token)
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            yield span

    def flush(self) -> None:
        self._provider.force_flush(2000)
