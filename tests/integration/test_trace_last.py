"""`raymesh trace --last`: the most recent conversation, never the runtime's own bookkeeping ask."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import pytest
import ray
from _agents import Relay, Relayer, Seen
from conftest import Spawn
from typer.testing import CliRunner

from mesh import Mesh, MeshError
from mesh.cli import app
from mesh.edge import settled_trace
from protocols import UsageQuery

pytestmark = pytest.mark.ray


async def test_trace_last_skips_the_usage_query_sent_after_the_conversation(
    mesh: Mesh, spawn: Spawn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: `raymesh submit --follow` ends by asking for usage, and `trace --last`
    # showed that one raymesh.usage_query/1 span instead of the conversation.
    monkeypatch.setenv("RAYMESH_HOME", str(tmp_path))  # no saved traces of other runs
    a, b = [await spawn(Relayer, n) for n in ("last-a", "last-b")]
    conversation = uuid.uuid4().hex  # the session's span store holds other tests' traces
    await mesh.ask(a.name, Relay(route=[b.name]), trace_id=conversation, expect=Seen)
    assert len(await settled_trace(mesh, conversation)) == 2
    bookkeeping = uuid.uuid4().hex
    with contextlib.suppress(MeshError):  # a Relayer has no model: it has no usage to report
        await mesh.ask(a.name, UsageQuery(), trace_id=bookkeeping, timeout=5)
    (usage_span,) = await settled_trace(mesh, bookkeeping)
    assert (await mesh.trace())[0]["trace_id"] == conversation
    gcs = str(ray.get_runtime_context().gcs_address)
    shown = await asyncio.to_thread(
        CliRunner().invoke, app, ["trace", "--last", "--json", "--address", gcs]
    )
    assert shown.exit_code == 0, shown.output
    assert {span["trace_id"] for span in json.loads(shown.output)} == {conversation}
    # Marked, and by its id still there to see.
    assert usage_span["attributes"]["raymesh.bookkeeping"] is True
    assert [s["trace_id"] for s in await mesh.trace(bookkeeping)] == [bookkeeping]
