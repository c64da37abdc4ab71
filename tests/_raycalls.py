"""Stand-ins for Ray calls and for a peer host's handle, for tests that drive the data
path's parts without Ray: each call is a future the test settles by hand.

A stand-in host's data-path methods take calls in their wire form (`protocols.calls`)
and keep them opened, so tests read ``(link_id, seq, body)``; a batch call's result is
set as ``(refusals, carried)`` and reaches the link packed, as a host returns it; an
`asks` call is a stream the test pushes answers into, packed as a host yields them."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import Any

from ray.exceptions import ActorDiedError

from protocols.calls import open_batch_call, open_call, pack_answers, pack_result


class Call(concurrent.futures.Future[Any]):
    """What ``handle.method.remote(...)`` returns, settled by the test by hand.

    Like Ray's ObjectRef it can be awaited, and ``future()`` gives the concurrent
    future a link reads a call's end through: here, itself.
    """

    def future(self) -> concurrent.futures.Future[Any]:
        return self

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


class BatchCall(Call):
    """A `deliver` call: its result, set as ``(refusals, carried)``, is packed as a host's."""

    def set_result(self, result: Any) -> None:
        super().set_result(pack_result(*result) if isinstance(result, tuple) else result)


class Method:
    """One remote method of a stand-in host: each call is a `Call` the test settles.

    Args:
        calls: Whether it takes a data-path call (`protocols.calls`), kept opened in `args`.
        batch: Whether it is `deliver`, whose result is packed.
    """

    def __init__(self, *, calls: bool = False, batch: bool = False) -> None:
        self.calls: list[Call] = []
        self.args: list[tuple[Any, ...]] = []
        self._opens = calls
        self._batch = batch

    def remote(self, *args: Any) -> Call:
        call = BatchCall() if self._batch else Call()
        self.calls.append(call)
        if self._opens:  # opened as a host opens it: a malformed call fails the test
            opened = open_batch_call(args[0]) if self._batch else open_call(args[0])
            args = (*opened, *args[1:])
        self.args.append(args)
        return call


class StreamCall:
    """A streaming call (`asks`): the test pushes its items, then ends or fails it.

    Read as Ray's generator is: ``async for ref in call``, then ``await ref``.
    """

    def __init__(self) -> None:
        self._items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.ended = False

    def push(self, item: list[tuple[int, bytes]] | bytes) -> None:
        """Yield `item`: answers as ``(index, frame)`` pairs, packed; bytes as they are."""
        self._items.put_nowait(("item", item if isinstance(item, bytes) else pack_answers(item)))

    def end(self) -> None:
        self.ended = True
        self._items.put_nowait(("end", None))

    def fail(self, error: BaseException) -> None:
        self.ended = True
        self._items.put_nowait(("fail", error))

    def __aiter__(self) -> StreamCall:
        return self

    async def __anext__(self) -> asyncio.Future[Any]:
        kind, value = await self._items.get()
        if kind == "end":
            raise StopAsyncIteration
        if kind == "fail":
            raise value
        ref: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ref.set_result(value)
        return ref


class StreamMethod:
    """The `asks` method of a stand-in host: each call a `StreamCall`, its call kept opened."""

    def __init__(self) -> None:
        self.calls: list[StreamCall] = []
        self.args: list[tuple[Any, ...]] = []

    def remote(self, call: bytes) -> StreamCall:
        self.args.append(open_batch_call(call))
        self.calls.append(StreamCall())
        return self.calls[-1]


class PeerHost:
    """A peer host's Ray handle, stood in for: the methods that links and probes call."""

    def __init__(self) -> None:
        self.deliver = Method(calls=True, batch=True)
        self.request = Method(calls=True)
        self.asks = StreamMethod()
        self.watch = Method()
        self.probe = Method()

    def die(self) -> None:
        """Fail every call still open, as Ray does when the actor dies."""
        for method in (self.deliver, self.request, self.watch, self.probe):
            for call in method.calls:
                if not call.done():
                    call.set_exception(ActorDiedError())
        for stream in self.asks.calls:
            if not stream.ended:
                stream.fail(ActorDiedError())
