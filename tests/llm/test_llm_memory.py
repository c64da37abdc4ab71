"""The short-term window and the SQLite long-term store."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import ChatMessage, ConversationWindow, SQLiteMemory
from actors.providers import ToolCall


def test_the_window_drops_the_oldest_turns_and_keeps_the_system_prompt() -> None:
    window = ConversationWindow(max_tokens=60, system="You are terse.")
    for i in range(20):
        window.add(ChatMessage.user(f"message number {i} with some words"))
    messages = window.messages()
    assert messages[0].role == "system"
    assert messages[-1].content == "message number 19 with some words"
    assert window.tokens() <= 60
    assert len(messages) < 21


def test_the_window_never_keeps_a_tool_result_without_its_call() -> None:
    window = ConversationWindow(max_tokens=40)
    call = ToolCall(call_id="c1", name="add", arguments='{"a": 1, "b": 2}')
    window.add(ChatMessage.assistant("", [call]))
    window.add(ChatMessage(role="tool", content="3", tool_call_id="c1", name="add"))
    window.add(ChatMessage.user("a long follow up question " * 4))
    assert all(m.role != "tool" for m in window.messages())


@pytest.mark.parametrize("use_fts", [True, False], ids=["fts5", "like"])
async def test_the_store_finds_relevant_entries_and_persists_across_reopen(
    tmp_path: Path, use_fts: bool
) -> None:
    path = tmp_path / "memory.db"
    store = SQLiteMemory(path, use_fts=use_fts)
    await store.add("Ray actors are processes that hold state.", metadata={"src": "ray"})
    await store.add("Paris is the capital of France.")
    await store.add("Actors in raymesh talk directly to each other.")
    await store.close()

    reopened = SQLiteMemory(path, use_fts=use_fts)
    assert await reopened.count() == 3
    hits = await reopened.search("how do actors keep state?", k=2)
    assert hits[0].entry_id == 1
    assert hits[0].metadata == {"src": "ray"}
    assert len(hits) == 2
    assert await reopened.search("capital of France") != []
    assert await reopened.search("!!!") == []
    await reopened.close()


async def test_query_punctuation_is_never_fts_syntax() -> None:
    store = SQLiteMemory()
    await store.add('a "quoted" OR NEAR(term) entry')
    hits = await store.search('"quoted" OR NEAR( AND *')
    assert len(hits) == 1
    await store.close()
