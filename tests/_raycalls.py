"""A Ray call's result stand-in, for tests that drive the data path's parts without Ray."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import Any


class Call(concurrent.futures.Future[Any]):
    """What ``handle.method.remote(...)`` returns, settled by the test by hand.

    Like Ray's ObjectRef it can be awaited, and ``future()`` gives the concurrent
    future a link reads a call's end through: here, itself.
    """

    def future(self) -> concurrent.futures.Future[Any]:
        return self

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()
