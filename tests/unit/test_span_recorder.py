"""A host's span recorder: spans kept as packed rows, shipped as one blob the store reads."""

from __future__ import annotations

import gc
from typing import Any

from _raycalls import Method

from mesh.observability._spans import Recorder, add_to
from mesh.observability._spanstore import SpanStore
from protocols import Envelope, Kind


class _StoreHandle:
    """The span store actor's handle: each `add` call is recorded, for `_ship`."""

    def __init__(self) -> None:
        self.add = Method()


def _ship(handle: _StoreHandle, store: SpanStore) -> None:
    # What the span store actor would do with the batches the recorder sent it.
    for batch, count in handle.add.args:
        store.add(batch, count)


def _env(n: int) -> Envelope:
    return Envelope(kind=Kind.ASK, type="parts.work/1", sender="a", recipient="b",
                    payload=b"x" * n, trace_id=f"{n + 1:032x}")  # fmt: skip


def _record(recorder: Recorder, env: Envelope, **amounts: Any) -> None:
    with recorder.span(env, agent="b", role="worker", model="offline:small") as span:
        add_to(**amounts)
        recorder.outcome(span, None)


def test_spans_are_held_as_bytes_and_reach_the_store_in_one_batch() -> None:
    store, handle = SpanStore(capacity=100), _StoreHandle()
    recorder = Recorder(handle, service="b")
    for n in range(5):
        _record(recorder, _env(n), **{"llm.tokens_in": n})
    # Rows the garbage collector never walks, however many wait for the next shipment.
    assert not any(gc.is_tracked(row) for row in recorder._pending)
    recorder.flush()
    recorder.flush()  # nothing new: nothing shipped
    assert len(handle.add.args) == 1
    _ship(handle, store)
    [span] = store.trace(f"{4:032x}")
    assert span["name"] == "agent.b parts.work/1"
    assert span["status"] == "UNSET"
    assert span["attributes"] == {
        "raymesh.agent": "b", "raymesh.role": "worker", "raymesh.model": "offline:small",
        "raymesh.message.type": "parts.work/1", "raymesh.message.kind": "ask",
        "raymesh.message.bytes": 3, "raymesh.sender": "a", "raymesh.hops": 0,
        "llm.tokens_in": 3, "raymesh.outcome": "ok",
    }  # fmt: skip
    assert span["end_ns"] >= span["start_ns"] > 0
    assert store.stats() == {"spans": 5, "capacity": 100, "dropped": 0}


def test_beyond_its_capacity_the_oldest_spans_are_dropped_and_counted() -> None:
    store, handle = SpanStore(capacity=100), _StoreHandle()
    recorder = Recorder(handle, service="b", capacity=3)
    for n in range(5):
        _record(recorder, _env(n))
    assert recorder.dropped == 2
    recorder.flush()
    _ship(handle, store)
    assert [n for n in range(5) if store.trace(f"{n + 1:032x}")] == [2, 3, 4]


def test_a_span_msgpack_cannot_hold_is_dropped_and_handling_goes_on() -> None:
    store, handle = SpanStore(capacity=100), _StoreHandle()
    recorder = Recorder(handle, service="b")
    cycle: list[Any] = []
    cycle.append(cycle)  # msgpack refuses it (too deep)
    with recorder.span(_env(1), agent="b", role=None, model=None) as span:
        span.attributes["cycle"] = cycle
    _record(recorder, _env(2))
    assert recorder.dropped == 1
    recorder.flush()
    _ship(handle, store)
    assert store.trace(f"{2:032x}") == []
    assert len(store.trace(f"{3:032x}")) == 1
