"""Trace, span and message ids: the W3C shapes, unique, and not shared with a forked child."""

from __future__ import annotations

import os
import re

import pytest

from protocols import envelope, new_message_id, new_span_id, new_trace_id


def test_ids_have_the_w3c_shapes_and_do_not_repeat() -> None:
    traces = {new_trace_id() for _ in range(10_000)}
    spans = {new_span_id() for _ in range(10_000)}
    messages = {new_message_id() for _ in range(10_000)}
    assert len(traces) == len(spans) == len(messages) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and t != "0" * 32 for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in messages)


def test_a_forked_child_makes_different_ids_from_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(write, f"{new_trace_id()} {new_message_id()}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child_trace, child_message = pipe.read().split()
    assert child_trace != new_trace_id()
    assert child_message[:16] != new_message_id()[:16]


def test_ids_come_from_the_os_cryptographic_source_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def urandom(size: int) -> bytes:
        calls.append(size)
        return bytes([len(calls)]) * size

    envelope._fresh()
    monkeypatch.setattr(envelope.os, "urandom", urandom)
    ids = [new_message_id() for _ in range(256)]
    assert calls == [4096]  # one call makes 4 KiB of ids: 256 of 128 bits
    assert set(ids) == {"01" * 16}
    new_message_id()
    assert calls == [4096, 4096]
    envelope._fresh()  # the real source again for the tests that follow
    monkeypatch.undo()
    assert new_message_id() != "02" * 16
