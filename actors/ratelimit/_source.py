"""Where a process's limiter gets leases from: the key's Ray actor, or, without Ray, the
key's `KeyScheduler` in the process itself (which is a `LeaseSource` as it is).

The actor is named ``raymesh-ratelimit-<fingerprint>`` in the mesh's namespace and is
detached: it is found by name by every agent that uses the key, whichever started it,
and it does not die with the agent that happened to start it (its state is the key's
recent usage, which a restart would forget while the provider remembers).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import ray

from actors.ratelimit._headers import LimitReport
from actors.ratelimit._limits import RateLimits
from actors.ratelimit._scheduler import Finished, Grant, Heard, KeyScheduler

__all__ = ["LeaseSource", "actor_name", "lease_source"]


class LeaseSource(Protocol):
    """The key's authority, as a process's limiter sees it."""

    async def acquire(
        self, requests: int, tokens_each: int, *, priority: int, flow: str, deadline: float,
        finished: Finished | None = None, heard: Heard | None = None,
    ) -> Grant: ...  # fmt: skip

    def release(self, requests: int, tokens: int) -> None: ...

    def finish(self, finished: Finished) -> None: ...

    def pause(self, seconds: float) -> None: ...

    def observe(self, reports: dict[str, LimitReport]) -> None: ...


@ray.remote(num_cpus=0)
class KeyLimiterActor:
    """The cluster's one scheduler of a key; every method is a thin call into it."""

    def __init__(self, limits: dict[str, Any]) -> None:
        self.scheduler = KeyScheduler(RateLimits.model_validate(limits))

    async def acquire(
        self, requests: int, tokens_each: int, *, priority: int, flow: str, deadline: float,
        finished: Finished | None = None, heard: Heard | None = None,
    ) -> Grant:  # fmt: skip
        """Wait for a lease, or a refusal; see `KeyScheduler.acquire`."""
        return await self.scheduler.acquire(
            requests,
            tokens_each,
            priority=priority,
            flow=flow,
            deadline=deadline,
            finished=finished,
            heard=heard,
        )

    async def release(self, requests: int, tokens: int) -> None:
        self.scheduler.release(requests, tokens)

    async def finish(self, finished: Finished) -> None:
        self.scheduler.finish(finished)

    async def pause(self, seconds: float) -> None:
        self.scheduler.pause(seconds)

    async def observe(self, reports: dict[str, LimitReport]) -> None:
        self.scheduler.observe(reports)

    async def stats(self) -> dict[str, float]:
        """Granted and refused requests, and the current limits (no key: there is none)."""
        s = self.scheduler
        window = s.limits.window_s
        return {
            "granted": s.granted,
            "refused": s.refused,
            "requests_per_window": s.requests.rate * window if s.requests else 0,
            "tokens_per_window": s.tokens.rate * window if s.tokens else 0,
        }


class _Remote:
    """The key's actor; only `acquire` is awaited, the rest are sent and forgotten.

    Ray does not order calls to an async actor: what must come before a lease (the
    provider's headers, a pause) goes again inside it (`Heard`).
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def acquire(
        self, requests: int, tokens_each: int, *, priority: int, flow: str, deadline: float,
        finished: Finished | None = None, heard: Heard | None = None,
    ) -> Grant:  # fmt: skip
        grant: Grant = await self.handle.acquire.remote(
            requests,
            tokens_each,
            priority=priority,
            flow=flow,
            deadline=deadline,
            finished=finished,
            heard=heard,
        )
        return grant

    def release(self, requests: int, tokens: int) -> None:
        self.handle.release.remote(requests, tokens)

    def finish(self, finished: Finished) -> None:
        self.handle.finish.remote(finished)

    def pause(self, seconds: float) -> None:
        self.handle.pause.remote(seconds)

    def observe(self, reports: dict[str, LimitReport]) -> None:
        self.handle.observe.remote(reports)


def actor_name(key: str) -> str:
    """Return the limiter actor's name for a key fingerprint (never the key)."""
    return f"raymesh-ratelimit-{key}"


_local: dict[tuple[str, int], KeyScheduler] = {}


def lease_source(key: str, limits: RateLimits) -> LeaseSource:
    """Return the key's actor (started if missing) under Ray, else the process's scheduler.

    The first caller's limits configure the key; the providers' headers adjust them later.
    """
    if ray.is_initialized():
        handle = KeyLimiterActor.options(  # type: ignore[attr-defined]
            name=actor_name(key), lifetime="detached", get_if_exists=True
        ).remote(limits.model_dump())
        return _Remote(handle)
    # A scheduler's futures and timers belong to one event loop.
    slot = (key, id(asyncio.get_running_loop()))
    if slot not in _local:
        _local[slot] = KeyScheduler(limits)
    return _local[slot]
