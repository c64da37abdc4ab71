"""Stand-ins for Ray calls and for a peer host's handle, for tests that drive the data
path's parts without Ray: each call is a future the test settles by hand."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import Any

from ray.exceptions import ActorDiedError


class Call(concurrent.futures.Future[Any]):
    """What ``handle.method.remote(...)`` returns, settled by the test by hand.

    Like Ray's ObjectRef it can be awaited, and ``future()`` gives the concurrent
    future a link reads a call's end through: here, itself.
    """

    def future(self) -> concurrent.futures.Future[Any]:
        return self

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


class Method:
    """One remote method of a stand-in host: each call is a `Call` the test settles."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.args: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> Call:
        call = Call()
        self.calls.append(call)
        self.args.append(args)
        return call


class PeerHost:
    """A peer host's Ray handle, stood in for: the methods that links and probes call."""

    def __init__(self) -> None:
        self.deliver = Method()
        self.request = Method()
        self.watch = Method()
        self.probe = Method()

    def die(self) -> None:
        """Fail every call still open, as Ray does when the actor dies."""
        for method in (self.deliver, self.request, self.watch, self.probe):
            for call in method.calls:
                if not call.done():
                    call.set_exception(ActorDiedError())
