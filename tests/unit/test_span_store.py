"""The span store: a bounded window of the newest spans, kept as the batches came."""

from __future__ import annotations

from typing import Any

import pytest
from _span_batches import batch

from mesh.observability import _spanstore
from mesh.observability._spans import SpanRecord
from mesh.observability._spanstore import SpanStore


def _spans(start: int, stop: int) -> list[SpanRecord]:
    return [SpanRecord(trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_span_id=None,
                       name="agent.a t", start_ns=i, end_ns=i, attributes={"n": i})
            for i in range(start, stop)]  # fmt: skip


def _kept(store: SpanStore, start: int, stop: int) -> list[int]:
    return [i for i in range(start, stop) if store.trace(f"{i:032x}")]


def test_the_span_store_drops_the_oldest_beyond_its_capacity_and_counts_them() -> None:
    store = SpanStore(capacity=100)
    spans = _spans(0, 150)
    store.add(batch(spans[:60]), 60)
    store.add(batch(spans[60:]), 90)  # the oldest 50 go: most of the first batch
    assert store.stats() == {"spans": 100, "capacity": 100, "dropped": 50}
    assert store.trace(f"{49:032x}") == []
    assert [s["attributes"] for s in store.trace(f"{50:032x}")] == [{"n": 50}]
    assert store.trace(f"{149:032x}") == [{
        "trace_id": f"{149:032x}", "span_id": f"{149:016x}", "parent_span_id": None,
        "name": "agent.a t", "start_ns": 149, "end_ns": 149, "status": "UNSET", "error": None,
        "attributes": {"n": 149}, "events": [],
    }]  # fmt: skip
    assert store.last_trace() == f"{149:032x}"
    store.add(batch(_spans(150, 155)), 5)  # the trimmed batch is trimmed again
    assert store.stats() == {"spans": 100, "capacity": 100, "dropped": 55}
    assert _kept(store, 0, 155) == list(range(55, 155))


def test_a_full_store_drops_spans_without_decoding_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dropping runs for every batch once the store is full: decoding the oldest batch to
    # keep its newer rows cost the store a batch's decode and pack each time.
    store = SpanStore(capacity=100)
    store.add(batch(_spans(0, 80)), 80)
    decoded: list[bytes] = []

    def counting(blob: bytes) -> list[list[Any]]:
        decoded.append(blob)
        return real(blob)

    real = _spanstore.unpack_spans
    monkeypatch.setattr(_spanstore, "unpack_spans", counting)
    for start in range(80, 304, 7):  # batches of 7 that drop across batch boundaries
        store.add(batch(_spans(start, start + 7)), 7)
    assert decoded == []
    assert store.stats() == {"spans": 100, "capacity": 100, "dropped": 204}
    assert _kept(store, 0, 310) == list(range(204, 304))
    store.add(batch(_spans(304, 504)), 200)  # one batch larger than the whole store
    assert store.stats() == {"spans": 100, "capacity": 100, "dropped": 404}
    assert _kept(store, 0, 510) == list(range(404, 504))


def test_the_span_store_reads_past_a_blob_that_is_not_a_batch_of_spans() -> None:
    store = SpanStore(capacity=100)
    kept = SpanRecord(trace_id="a" * 32, span_id="b" * 16, parent_span_id=None,
                      name="agent.a t", start_ns=1, end_ns=2, attributes={})  # fmt: skip
    store.add(b"\xc1 not msgpack", 1)
    store.add(batch([kept]), 1)
    store.add(b"\x93\x01\x02\x03", 3)  # msgpack, but rows of the wrong shape
    assert [s["span_id"] for s in store.trace("a" * 32)] == ["b" * 16]
    assert store.last_trace() == "a" * 32
