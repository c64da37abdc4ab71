"""Sharing message classes: what an agent names, what is published, how misses are kept.

No Ray: the catalog is a real `TypeCatalog` called in process, the classes are pickled
by value with Ray's cloudpickle as the mesh does.
"""

from __future__ import annotations

import asyncio
import threading

from mesh import Agent, Context, handler
from mesh.control._catalog import TypeCatalog
from mesh.datapath._typeshare import LOOKUPS_PER_S, MISS_TTL_S, TypeShare, carried_by_value
from protocols import Message, decode, decode_message, encode, encode_message
from protocols.envelope import Envelope, Kind
from protocols.message import _REGISTRY, is_known


class Asked(Message, type="share.asked/1"):
    text: str = ""


class Replied(Message, type="share.replied/1"):
    text: str = ""


class Other(Message, type="share.other/1"):
    pass


class Replier(Agent):
    @handler
    async def on_asked(self, msg: Asked, ctx: Context) -> Replied | None:
        return Replied(text=msg.text)

    @handler
    async def on_other(self, msg: Other, ctx: Context) -> Message:
        return Other()


class Quiet(Replier):
    @handler
    async def on_replied(self, msg: Replied, ctx: Context) -> None:
        return None


def test_an_agent_names_the_classes_its_handlers_take_and_return() -> None:
    assert Replier.message_classes == (Asked, Replied, Other)
    assert set(Replier.handlers) == {"share.asked/1", "share.other/1"}  # replies: no route
    assert Quiet.message_classes == (Asked, Replied, Other)  # inherited, no repeats


def test_a_class_is_carried_by_value_only_if_no_import_path_finds_it() -> None:
    def local() -> type[Message]:
        class Local(Message):
            pass

        return Local

    assert not carried_by_value(Asked)
    assert carried_by_value(local())
    assert carried_by_value(type("Main", (Message,), {"__module__": "__main__"}))


class _Catalog:
    """A real catalog, called in process, that counts the calls made to it."""

    def __init__(self) -> None:
        self.catalog = TypeCatalog()
        self.fetches = 0
        self.stores = 0

    async def fetch(self, tag: str) -> bytes | None:
        self.fetches += 1
        await asyncio.sleep(0)
        return self.catalog.fetch(tag)

    async def store(self, tag: str, blob: bytes) -> None:
        self.stores += 1
        self.catalog.publish(tag, blob)

    def share(self, clock: list[float]) -> TypeShare:
        return TypeShare(fetch=self.fetch, store=self.store, clock=lambda: clock[0])


def _script_class(tag: str) -> type[Message]:
    # What a script's class is to the other processes: defined nowhere they can import.
    class Scripted(Message, type=tag):
        text: str

    return Scripted


async def test_a_class_published_once_is_learned_once_by_a_process_that_never_saw_it() -> None:
    catalog, clock = _Catalog(), [0.0]
    tag = "share.scripted/1"
    scripted = _script_class(tag)
    sender = catalog.share(clock)
    await asyncio.gather(*(sender.publish([scripted, Asked]) for _ in range(5)))
    await sender.share(scripted(text="again"))
    assert catalog.stores == 1  # Asked is importable: never published
    frame = encode(Envelope(kind=Kind.REPLY, type=tag, sender="a", recipient="b",
                            payload=encode_message(scripted(text="hi"))))  # fmt: skip
    del _REGISTRY[tag]  # the asker's process: it never defined the class
    receiver = catalog.share(clock)
    await asyncio.gather(*(receiver.learn(tag) for _ in range(5)))
    assert catalog.fetches == 1
    assert is_known(tag)
    learned = decode_message(decode(frame))
    assert learned.type_tag == tag
    assert learned.model_dump() == {"text": "hi"}
    await receiver.learn(tag)  # known now: a dict lookup, no call
    assert catalog.fetches == 1


async def test_a_tag_nobody_published_is_asked_for_once_per_miss_period() -> None:
    catalog, clock = _Catalog(), [0.0]
    share = catalog.share(clock)
    for _ in range(100):
        await share.learn("nobody.defined/1")
    assert catalog.fetches == 1
    assert not is_known("nobody.defined/1")
    clock[0] += MISS_TTL_S + 0.1
    await share.learn("nobody.defined/1")
    assert catalog.fetches == 2


async def test_a_flood_of_made_up_tags_is_held_to_the_lookup_rate() -> None:
    catalog, clock = _Catalog(), [0.0]
    share = catalog.share(clock)
    for n in range(1000):
        await share.learn(f"flood.tag{n}/1")
    assert catalog.fetches == LOOKUPS_PER_S
    clock[0] += 1.0  # a second later, a second's worth more
    for n in range(1000, 2000):
        await share.learn(f"flood.tag{n}/1")
    assert catalog.fetches == 2 * LOOKUPS_PER_S


async def test_a_class_that_cannot_be_pickled_is_not_published_again_and_again() -> None:
    catalog, clock = _Catalog(), [0.0]
    share = catalog.share(clock)
    unpicklable = _script_class("share.unpicklable/1")
    unpicklable.lock = threading.Lock()  # type: ignore[attr-defined]  # pickling refuses it
    for _ in range(3):
        await share.publish([unpicklable])
    assert catalog.stores == 0
    assert unpicklable in share.settled
