"""Memory: a short-term conversation window and a long-term store for retrieval.

The window keeps a conversation inside a token budget by dropping its oldest turns
first, never the system prompt, and never a tool result without the call it answers.
Long-term memory is an interface (`LongTermMemory`) with one embedded default,
`SQLiteMemory`: a file on disk (stdlib ``sqlite3``), searched with FTS5 full-text ranking
when the SQLite build has it and with ``LIKE`` matching otherwise. No server, no
embedding model, so retrieval works offline; a vector store can implement the same
interface.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from actors.providers import ChatMessage
from mesh.security import private_dir, private_file

__all__ = ["ConversationWindow", "LongTermMemory", "MemoryHit", "SQLiteMemory"]

_TERM = re.compile(r"[A-Za-z0-9_]+")


class ConversationWindow:
    """The recent turns of a conversation, trimmed to `max_tokens` (estimated)."""

    def __init__(self, *, max_tokens: int = 4000, system: str | None = None) -> None:
        """Start an empty window, with a system prompt that is always kept."""
        self.max_tokens = max_tokens
        self.system = ChatMessage.system(system) if system else None
        self.turns: list[ChatMessage] = []

    def add(self, message: ChatMessage) -> None:
        """Append a turn, then trim the oldest turns until the window fits."""
        if message.role == "system":
            self.system = message
        else:
            self.turns.append(message)
        self.trim()

    def extend(self, messages: Sequence[ChatMessage]) -> None:
        """Append several turns."""
        for message in messages:
            self.add(message)

    def tokens(self) -> int:
        """Return the estimated tokens of the window, system prompt included."""
        base = self.system.size_hint() if self.system else 0
        return base + sum(m.size_hint() for m in self.turns)

    def trim(self) -> None:
        """Drop the oldest turns until the window fits; the newest turn always stays."""
        while len(self.turns) > 1 and self.tokens() > self.max_tokens:
            self.turns.pop(0)
            # A tool result without its call is refused by providers: drop it too.
            while len(self.turns) > 1 and self.turns[0].role == "tool":
                self.turns.pop(0)

    def messages(self) -> list[ChatMessage]:
        """Return the window as a conversation, system prompt first."""
        return ([self.system] if self.system else []) + list(self.turns)


class MemoryHit(BaseModel):
    """One retrieved entry."""

    entry_id: int
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Higher is better; comparable only within one search.
    score: float


@runtime_checkable
class LongTermMemory(Protocol):
    """A store of texts searched by relevance to a query."""

    async def add(self, text: str, *, metadata: dict[str, Any] | None = None) -> int:
        """Store a text; return its id."""
        ...

    async def search(self, query: str, *, k: int = 5) -> list[MemoryHit]:
        """Return up to `k` entries most relevant to `query`, best first."""
        ...

    async def close(self) -> None:
        """Release the store."""
        ...


class SQLiteMemory:
    """Long-term memory in one SQLite file, searched with FTS5 (or LIKE where missing)."""

    def __init__(self, path: str | Path = ":memory:", *, use_fts: bool | None = None) -> None:
        """Open (or create) the store at `path`.

        Args:
            path: The database file; ``:memory:`` for a throwaway store.
            use_fts: Force FTS5 on or off; by default it is used when available.
        """
        self.path = str(path)
        if self.path != ":memory:":
            # Created 0600 before SQLite opens it (its journals take the file's mode): what
            # agents remember may be anything a user told them.
            folder = Path(self.path).parent
            if not folder.is_dir():
                private_dir(folder)
            private_file(self.path)
        # One connection used from worker threads, one at a time (the lock).
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        self.fts = _has_fts5(self._db) if use_fts is None else use_fts
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries ("
                "id INTEGER PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL)"
            )
            if self.fts:
                self._db.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5("
                    "text, content='entries', content_rowid='id')"
                )

    async def add(self, text: str, *, metadata: dict[str, Any] | None = None) -> int:
        """Store a text with optional metadata (JSON-serialisable); return its id."""
        return await asyncio.to_thread(self._add, text, metadata or {})

    async def search(self, query: str, *, k: int = 5) -> list[MemoryHit]:
        """Return up to `k` entries matching any term of `query`, best first."""
        return await asyncio.to_thread(self._search, query, k)

    async def count(self) -> int:
        """Return the number of stored entries."""
        return await asyncio.to_thread(self._count)

    async def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _add(self, text: str, metadata: dict[str, Any]) -> int:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO entries (text, metadata) VALUES (?, ?)", (text, json.dumps(metadata))
            )
            row_id = int(cursor.lastrowid or 0)
            if self.fts:
                self._db.execute(
                    "INSERT INTO entries_fts (rowid, text) VALUES (?, ?)", (row_id, text)
                )
        return row_id

    def _count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def _search(self, query: str, k: int) -> list[MemoryHit]:
        terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(query)))
        if not terms:
            return []
        with self._lock:
            if self.fts:
                # Quoted terms: the query's own punctuation is never FTS syntax.
                match = " OR ".join(f'"{t}"' for t in terms)
                rows = self._db.execute(
                    "SELECT e.id, e.text, e.metadata, bm25(entries_fts) FROM entries_fts "
                    "JOIN entries e ON e.id = entries_fts.rowid "
                    "WHERE entries_fts MATCH ? ORDER BY bm25(entries_fts) LIMIT ?",
                    (match, k),
                ).fetchall()
                return [
                    MemoryHit(entry_id=r[0], text=r[1], metadata=json.loads(r[2]), score=-r[3])
                    for r in rows
                ]
            where = " OR ".join("lower(text) LIKE ?" for _ in terms)
            rows = self._db.execute(
                f"SELECT id, text, metadata FROM entries WHERE {where}",
                [f"%{t}%" for t in terms],
            ).fetchall()
        hits = [
            MemoryHit(
                entry_id=r[0],
                text=r[1],
                metadata=json.loads(r[2]),
                score=float(sum(r[1].lower().count(t) for t in terms)),
            )
            for r in rows
        ]
        hits.sort(key=lambda h: (-h.score, h.entry_id))
        return hits[:k]


def _has_fts5(db: sqlite3.Connection) -> bool:
    try:
        db.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
        db.execute("DROP TABLE temp.fts5_probe")
    except sqlite3.OperationalError:
        return False
    return True
