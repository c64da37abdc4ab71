"""One process's side of the type catalog: publish what only it can define, learn the rest.

Publishing: before a participant first sends a message (or spawns an agent naming it)
whose class the other processes cannot import, it puts the class in the catalog, once
per process. Learning: a reply whose tag this process does not know is looked up in the
catalog before it is decoded, once per tag; the class is then registered for good.
Misses are remembered for a while and lookups are rate-limited, so a flood of made-up
tags costs a dict lookup each, not a catalog call each. A known tag never gets here.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from typing import Any

from ray import cloudpickle

from mesh.observability import get_logger
from protocols import Message
from protocols.message import is_known, register

__all__ = ["TYPE_CATALOG_NAME", "TypeShare", "carried_by_value"]

#: The name of the namespace\'s type catalog actor (``mesh.control`` starts it).
TYPE_CATALOG_NAME = "raymesh.types"

Fetch = Callable[[str], Awaitable[bytes | None]]
Store = Callable[[str, bytes], Awaitable[None]]

#: How long a tag the catalog did not have is not asked for again.
MISS_TTL_S = 2.0
#: Misses remembered at once; the oldest go first.
_MISSES_KEPT = 1024
#: Catalog lookups a process makes per second at most (and in a burst).
LOOKUPS_PER_S = 20.0
#: The longest a lookup waits for the catalog (a restarting one) before it is a miss.
LOOKUP_TIMEOUT_S = 2.0


def carried_by_value(cls: type) -> bool:
    """Return True for a class that Ray's pickling ships by value, not by import path.

    That is one defined in ``__main__`` or inside a function, or in a module registered
    with ``cloudpickle.register_pickle_by_value``: other processes know it only if it
    reaches them inside something pickled, so it goes to the catalog.
    """
    module = cls.__module__
    if module == "__main__" or module in cloudpickle.list_registry_pickle_by_value():  # type: ignore[no-untyped-call]
        return True
    found: Any = sys.modules.get(module)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is not cls


class TypeShare:
    """Publishes and looks up message classes through the catalog, for one process.

    Args:
        fetch: Returns the pickled class for a tag from the catalog, or None.
        store: Puts a pickled class in the catalog under its tag.
        clock: Monotonic seconds (for the miss memory and the lookup rate).
    """

    def __init__(
        self, *, fetch: Fetch, store: Store, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._clock = clock
        #: Classes this process needs not publish: done, importable, or unpicklable.
        self.settled: set[type[Message]] = set()
        self._missed: dict[str, float] = {}  # tag -> until when not to ask again
        self._tokens = LOOKUPS_PER_S
        self._refilled = clock()
        self._flights: dict[str, asyncio.Task[None]] = {}
        self.lookups = 0
        self._log = get_logger(component="types")

    @classmethod
    def of_catalog(cls, catalog: Any) -> TypeShare:
        """Return a share backed by a `TypeCatalog` actor handle."""

        async def fetch(tag: str) -> bytes | None:
            blob: bytes | None = await catalog.fetch.remote(tag)
            return blob

        async def store(tag: str, blob: bytes) -> None:
            await catalog.publish.remote(tag, blob)

        return cls(fetch=fetch, store=store)

    async def share(self, message: Message) -> None:
        """Publish the class of `message` before it is sent, if it is the first of its class."""
        if type(message) not in self.settled:
            await self.publish([type(message)])

    async def publish(self, classes: Iterable[type[Message]]) -> None:
        """Put in the catalog those of `classes` only this process can define, once each."""
        for message_cls in classes:
            if message_cls not in self.settled:
                await self._once(
                    f"publish:{message_cls.type_tag}", partial(self._publish, message_cls)
                )

    async def _publish(self, message_cls: type[Message]) -> None:
        tag = message_cls.type_tag
        if tag is None or not carried_by_value(message_cls):
            self.settled.add(message_cls)
            return
        try:
            blob = cloudpickle.dumps(message_cls)  # type: ignore[no-untyped-call]
        except Exception as exc:
            self.settled.add(message_cls)  # it never will pickle: peers cannot learn it
            self._log.warning("message class cannot be shared", type=tag, error=repr(exc))
            return
        try:
            await self._store(tag, blob)
        except Exception as exc:
            self._log.warning("message class not published", type=tag, error=repr(exc))
            return
        self.settled.add(message_cls)

    async def learn(self, tag: str) -> None:
        """Register the class for `tag` from the catalog, if it has one and may be asked.

        Returns without a call for a known tag, a recent miss, or when this process has
        used up its lookups for now; the decode that follows then fails as unknown.
        """
        if is_known(tag) or self._recently_missed(tag) or not self._may_look_up(tag):
            return
        await self._once(f"learn:{tag}", partial(self._learn, tag))

    async def _learn(self, tag: str) -> None:
        self.lookups += 1
        try:
            blob = await asyncio.wait_for(self._fetch(tag), LOOKUP_TIMEOUT_S)
            found = None if blob is None else cloudpickle.loads(blob)
            if not (isinstance(found, type) and issubclass(found, Message)):
                raise LookupError(f"the catalog has no message class for {tag!r}")
            if found.type_tag != tag:
                raise LookupError(f"the catalog's class for {tag!r} has tag {found.type_tag!r}")
            register(found)
        except Exception as exc:
            self._missed[tag] = self._clock() + MISS_TTL_S
            if len(self._missed) > _MISSES_KEPT:
                del self._missed[next(iter(self._missed))]
            self._log.debug("message type not learned", type=tag, error=repr(exc))

    def _recently_missed(self, tag: str) -> bool:
        until = self._missed.get(tag)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._missed[tag]
        return False

    def _may_look_up(self, tag: str) -> bool:
        # A token bucket; a tag already being looked up joins that lookup for free.
        if f"learn:{tag}" in self._flights:
            return True
        now = self._clock()
        self._tokens = min(LOOKUPS_PER_S, self._tokens + (now - self._refilled) * LOOKUPS_PER_S)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _once(self, key: str, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Concurrent callers share one call; one caller's cancellation does not end it.
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(start())
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        await asyncio.shield(flight)
