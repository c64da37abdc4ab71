"""The span store: a bounded window of recent spans kept by the mesh itself.

It lets ``raymesh trace`` show a conversation with no tracing backend installed. Spans
reach it in batches, off the message path; when it is full the oldest are dropped and
counted, so its memory stays bounded whatever the traffic. A trace leaves it redacted:
masked are key shapes, the secret variables of its environment and the values of the
cluster's secrets file (``RAYMESH_SECRETS_FILE``), which it reads when it starts.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import Any

import ray

from mesh._placement import service_options
from mesh.errors import ConfigError
from mesh.security import read_secrets_file, redact_data

__all__ = ["SPAN_STORE_NAME", "SpanStore", "span_store"]

SPAN_STORE_NAME = "raymesh.spans"


class SpanStore:
    """The span store actor's state and methods."""

    def __init__(self, capacity: int) -> None:
        self._spans: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._dropped = 0
        if secrets_file := os.environ.get("RAYMESH_SECRETS_FILE"):
            # Its values are remembered, to be masked; a file gone or readable by others
            # is the hosts' error to report (they read it too), not a reason to keep no spans.
            with contextlib.suppress(ConfigError):
                read_secrets_file(secrets_file)

    def add(self, batch: list[dict[str, Any]]) -> None:
        """Keep a batch of finished spans, dropping the oldest beyond capacity."""
        overflow = len(self._spans) + len(batch) - (self._spans.maxlen or 0)
        self._dropped += max(0, overflow)
        self._spans.extend(batch)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Return the spans of one trace, in start order, with secrets masked."""
        spans = sorted((s for s in self._spans if s["trace_id"] == trace_id),
                       key=lambda s: s["start_ns"])  # fmt: skip
        return [redact_data(span) for span in spans]

    def last_trace(self) -> str | None:
        """Return the conversation whose root span ended last, or None.

        The runtime's own asks (a usage query a CLI sends after a run, say) are not
        conversations: traces rooted in a span marked ``raymesh.bookkeeping`` are skipped.
        """
        roots = [s for s in self._spans if s["parent_span_id"] is None
                 and not s.get("attributes", {}).get("raymesh.bookkeeping")]  # fmt: skip
        return max(roots, key=lambda s: s["end_ns"])["trace_id"] if roots else None

    def stats(self) -> dict[str, int]:
        """Return how many spans are kept, the capacity and how many were dropped."""
        return {"spans": len(self._spans), "capacity": self._spans.maxlen or 0,
                "dropped": self._dropped}  # fmt: skip


def span_store(*, namespace: str, capacity: int) -> Any:
    """Return the namespace's span store actor, starting it on the head node if needed."""
    options = service_options(SPAN_STORE_NAME, namespace=namespace)
    return ray.remote(SpanStore).options(**options).remote(capacity)
