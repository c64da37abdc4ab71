"""Spans as a host's recorder ships them to the span store, for the store's tests."""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from mesh.observability._spans import SpanRecord


def batch(spans: Sequence[SpanRecord]) -> bytes:
    """Return `spans` as one batch: a msgpack array of their rows (`SpanRecord.as_row`)."""
    blob: bytes = msgpack.packb([s.as_row() for s in spans], use_bin_type=True)
    return blob
