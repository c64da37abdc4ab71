"""An exact-match cache of model responses: the same (model, messages, tools, parameters)
gets the same answer without calling the model again.

In memory per client (a TTL and a size bound), and optionally shared through a SQLite file
per mesh namespace (``$RAYMESH_HOME/cache/<namespace>.sqlite`` by default, created 0600 in a
0700 directory: it holds prompts and answers). A request sampled at a temperature above
zero is not cached unless `CacheConfig.sampled` says so: its answers are meant to differ.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actors.providers import ModelRequest, ModelResponse
from mesh import ConfigError
from mesh.extension import private_dir, private_file, raymesh_home

__all__ = ["CacheConfig", "ResponseCache", "cache_config"]


class CacheConfig(BaseModel):
    """How a client caches responses (``cache:`` in an agent's spec)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Seconds an answer stays usable.
    ttl_s: float = Field(default=3600.0, gt=0)
    #: Answers kept in memory (and in the shared file), the least recently used dropped.
    max_entries: int = Field(default=1024, gt=0)
    #: Share answers between the namespace's agents through a SQLite file.
    shared: bool = False
    #: The shared file; by default ``$RAYMESH_HOME/cache/<namespace>.sqlite``.
    path: str | None = None
    #: Cache requests sampled at a temperature above zero too.
    sampled: bool = False


def cache_config(
    value: CacheConfig | Mapping[str, Any] | bool, *, agent: str | None
) -> CacheConfig:
    """Return `value` as a `CacheConfig` (``True``: the defaults; a mapping from a team file).

    Raises:
        ConfigError: A key is unknown or a value out of range.
    """
    if isinstance(value, CacheConfig):
        return value
    try:
        return CacheConfig.model_validate({} if value is True else dict(value or {}))
    except (ValidationError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"cache settings {value!r} are not usable: {exc}",
            agent=agent,
            hint="write cache: {ttl_s: 3600, max_entries: 1024, shared: true}",
        ) from None


class ResponseCache:
    """Responses by request digest: in memory, then in the shared file if configured."""

    def __init__(self, config: CacheConfig, *, namespace: str = "default") -> None:
        """Open (or create, privately) the shared file if the config asks for one."""
        self.config = config
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if config.shared:
            path = Path(config.path) if config.path else _default_path(namespace)
            private_dir(path.parent)
            self._db = sqlite3.connect(private_file(path), isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, at REAL, body TEXT)"
            )
        self.hits = 0
        self.misses = 0

    def key(self, model: str, request: ModelRequest) -> str | None:
        """Return the request's digest, or None when it must not be cached (sampled)."""
        if (request.temperature or 0.0) > 0 and not self.config.sampled:
            return None
        material = json.dumps([model, request.model_dump(mode="json")], sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()

    def get(self, key: str) -> ModelResponse | None:
        """Return the cached response for `key`, if one is fresh."""
        now = time.time()
        found = self._memory.get(key)
        if found is None and self._db is not None:
            row = self._db.execute("SELECT at, body FROM answers WHERE key = ?", (key,)).fetchone()
            found = (float(row[0]), str(row[1])) if row else None
        if found is None or now - found[0] > self.config.ttl_s:
            self.misses += 1
            return None
        self._remember(key, found)
        self.hits += 1
        return ModelResponse.model_validate_json(found[1])

    def put(self, key: str, response: ModelResponse) -> None:
        """Keep `response` for `key`; drop the oldest entries past the size bound."""
        entry = (time.time(), response.model_dump_json())
        self._remember(key, entry)
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", (key, *entry))
            self._db.execute(
                "DELETE FROM answers WHERE key NOT IN "
                "(SELECT key FROM answers ORDER BY at DESC LIMIT ?)",
                (self.config.max_entries,),
            )

    def close(self) -> None:
        """Close the shared file."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _remember(self, key: str, entry: tuple[float, str]) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self.config.max_entries:
            self._memory.popitem(last=False)


def _default_path(namespace: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace) or "default"
    return raymesh_home() / "cache" / f"{safe}.sqlite"
