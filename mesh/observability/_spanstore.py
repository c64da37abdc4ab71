"""The span store: a bounded window of recent spans kept by the mesh itself.

It lets ``raymesh trace`` show a conversation with no tracing backend installed. Spans
reach it in batches, off the message path, each a msgpack blob kept as it came and read
only by a query: the store does no work per span while messages flow. When it is full the
oldest spans are dropped and counted: whole batches, and of the oldest batch left only a
count of its rows to skip, so that dropping never decodes a blob either. Its memory stays
bounded whatever the traffic (the capacity's spans and the skipped rows of one batch); a
blob that is not a batch of spans is ignored when read. A trace leaves it redacted: masked
are key shapes, the secret variables of its environment and the values of the cluster's
secrets file (``RAYMESH_SECRETS_FILE``), which it reads when it starts.

Trimming the oldest batch by decoding and re-packing its newer rows, as it once did, cost
the store a decode and a pack of up to a whole batch for every batch it took once full: on
two cores, after earlier traffic had filled it, traced messages ran at 0.86x of untraced
where an empty store gave 0.92x (`watchdogs.cost`).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

import ray

from mesh._placement import service_options
from mesh.errors import ConfigError
from mesh.observability._spans import SPAN_FIELDS, span_dict, unpack_spans
from mesh.security import read_secrets_file, redact_data

__all__ = ["SPAN_STORE_NAME", "SpanStore", "span_store"]

SPAN_STORE_NAME = "raymesh.spans"

_TRACE_ID, _PARENT, _START_NS, _END_NS, _ATTRIBUTES = (
    SPAN_FIELDS.index(f) for f in ("trace_id", "parent_span_id", "start_ns", "end_ns", "attributes")
)


class SpanStore:
    """The span store actor's state and methods."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # (spans, blob), oldest first; the first `_skip` rows of the oldest are dropped.
        self._batches: deque[tuple[int, bytes]] = deque()
        self._skip = 0
        self._kept = 0
        self._dropped = 0
        if secrets_file := os.environ.get("RAYMESH_SECRETS_FILE"):
            # Its values are remembered, to be masked; a file gone or readable by others
            # is the hosts' error to report (they read it too), not a reason to keep no spans.
            with contextlib.suppress(ConfigError):
                read_secrets_file(secrets_file)

    def add(self, batch: bytes, count: int) -> None:
        """Keep a batch of `count` finished spans (`Recorder.flush`), dropping the oldest beyond
        capacity."""
        self._batches.append((count, batch))
        self._kept += count
        excess = self._kept - self._capacity
        while excess > 0:
            oldest = self._batches[0][0] - self._skip  # its rows still kept
            if oldest > excess:
                self._skip += excess
                dropped = excess
            else:
                self._batches.popleft()
                self._skip = 0
                dropped = oldest
            self._kept -= dropped
            self._dropped += dropped
            excess -= dropped

    def _rows(self) -> Iterator[list[Any]]:
        skip = self._skip
        for _count, blob in self._batches:
            yield from unpack_spans(blob)[skip:]
            skip = 0

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Return the spans of one trace, in start order, with secrets masked."""
        rows = sorted((r for r in self._rows() if r[_TRACE_ID] == trace_id),
                      key=lambda r: r[_START_NS])  # fmt: skip
        return [redact_data(span_dict(row)) for row in rows]

    def last_trace(self) -> str | None:
        """Return the conversation whose root span ended last, or None.

        The runtime's own asks (a usage query a CLI sends after a run, say) are not
        conversations: traces rooted in a span marked ``raymesh.bookkeeping`` are skipped.
        """
        roots = [r for r in self._rows() if r[_PARENT] is None
                 and not (r[_ATTRIBUTES] or {}).get("raymesh.bookkeeping")]  # fmt: skip
        return str(max(roots, key=lambda r: r[_END_NS])[_TRACE_ID]) if roots else None

    def stats(self) -> dict[str, int]:
        """Return how many spans are kept, the capacity and how many were dropped."""
        return {"spans": self._kept, "capacity": self._capacity, "dropped": self._dropped}


def span_store(*, namespace: str, capacity: int) -> Any:
    """Return the namespace's span store actor, starting it on the head node if needed."""
    options = service_options(SPAN_STORE_NAME, namespace=namespace)
    return ray.remote(SpanStore).options(**options).remote(capacity)
