"""`RateLimiter`: a process's side of one key's limit. Calls draw on a lease; only when it
runs dry does the limiter ask the key's scheduler (one Ray call) for the next one.

Calls waiting here are ordered like the scheduler orders leases: priority first (higher
first), then round robin over trace ids, so a conversation making many calls does not
starve one making few. Finished calls (and how far their token estimates were off) are
reported to the scheduler with the next lease request, or a lease period after they end;
the provider's headers and 429s go at once, and again with the next lease request, which
they must come before.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.errors import RateLimitedError
from actors.ratelimit._headers import LimitReport, read_headers
from actors.ratelimit._limits import RateLimits
from actors.ratelimit._scheduler import Finished, Heard
from actors.ratelimit._source import LeaseSource, lease_source

__all__ = ["RateLimiter", "call_priority"]

#: The priority of the model calls made in this context (a message's own priority);
#: None: the limiter's, i.e. the agent's.
call_priority: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "raymesh_call_priority", default=None
)


@dataclass(order=True)
class _Call:
    order: tuple[int, int, int]
    tokens: int = field(compare=False)
    deadline: float = field(compare=False)
    priority: int = field(compare=False)
    flow: str = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


@dataclass
class _Lease:
    requests: int = 0
    tokens: int = 0
    expires_at: float = 0.0


class RateLimiter:
    """One key's limit as seen by one model client: a lease, and the calls waiting on it."""

    def __init__(
        self, key: str, limits: RateLimits, *, model: str, source: LeaseSource | None = None
    ) -> None:
        """Args:
        key: The fingerprint of the key (see `fingerprint`); never the key itself.
        limits: The limits to configure the key's scheduler with, if it is new.
        model: ``provider:MODEL``, for errors.
        source: The scheduler to lease from (by default the key's actor, or in-process).
        """
        self.key = key
        self.limits = limits
        self.model = model
        self._source = source
        self._flow = uuid.uuid4().hex[:12]
        self._lease = _Lease()
        self._queue: list[_Call] = []
        self._turns: dict[str, int] = {}
        self._clock = 0
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._finished = Finished()
        self._heard = Heard()
        self._flush: asyncio.TimerHandle | None = None
        self._recent: list[float] = []
        self._known: dict[str, LimitReport] = {}
        #: Seconds calls spent waiting for capacity (the latest 1000).
        self.waits: list[float] = []

    @property
    def source(self) -> LeaseSource:
        if self._source is None:
            self._source = lease_source(self.key, self.limits)
        return self._source

    async def acquire(
        self, tokens: int, *, deadline: float, trace_id: str | None = None,
        agent: str | None = None,
    ) -> None:  # fmt: skip
        """Wait until the key has capacity for one call of about `tokens` tokens.

        Raises:
            RateLimitedError: The capacity cannot come before `deadline`; raised as soon
                as that is known.
        """
        started = time.monotonic()
        priority = call_priority.get()
        priority = self.limits.priority if priority is None else priority
        flow = trace_id or ""
        turn = max(self._turns.get(flow, 0), self._clock) + 1
        self._turns[flow] = turn
        call = _Call((-priority, turn, next(self._seq)), tokens, deadline, priority, flow,
                     asyncio.get_running_loop().create_future())  # fmt: skip
        heapq.heappush(self._queue, call)
        self._recent.append(started)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                await call.future
        except TimeoutError:
            raise self._refusal(None, agent, trace_id) from None
        except RateLimitedError as exc:
            raise exc.with_context(agent=agent, trace_id=trace_id) from None
        finally:
            if not call.future.done():
                call.future.cancel()
        self.waits.append(time.monotonic() - started)
        del self.waits[:-1000]

    def finish(self, estimated: int, used: int) -> None:
        """A call that got capacity is over: it used `used` tokens against `estimated`.

        Reported with the next lease request, or a lease period from now, whichever is
        first: until then the scheduler counts the call as in flight.
        """
        self._finished.add(estimated, used)
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(self.limits.lease_s, self._report)

    def _report(self) -> None:
        self._flush = None
        finished, self._finished = self._finished, Finished()
        if finished.requests:
            self.source.finish(finished)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pass the provider's rate-limit headers on, when they change the picture."""
        reports = read_headers(headers)
        changed = {
            dim: r for dim, r in reports.items()
            if r.remaining == 0 or r.limit != getattr(self._known.get(dim), "limit", None)
        }  # fmt: skip
        if changed:
            self._known.update(changed)
            self._heard.reports.update(changed)
            self.source.observe(changed)

    def pause(self, seconds: float) -> None:
        """The provider said 429: the whole key (every process) waits `seconds`."""
        self._lease = _Lease()  # what is left of it would be refused too
        self._heard.paused_until = max(self._heard.paused_until, time.time() + seconds)
        self.source.pause(seconds)

    def close(self) -> None:
        """Return the lease's unused capacity and report the finished calls."""
        self._return_lease()
        if self._flush is not None:
            self._flush.cancel()
        self._report()

    async def _run(self) -> None:
        """Hand the lease to waiting calls in order; lease more when it runs dry."""
        while self._queue:
            head = self._queue[0]
            if head.future.done():
                heapq.heappop(self._queue)
                continue
            lease = self._lease
            if lease.expires_at <= time.time():
                self._return_lease()
                lease = self._lease
            if lease.requests >= 1 and lease.tokens >= head.tokens:
                heapq.heappop(self._queue)
                lease.requests -= 1
                lease.tokens -= head.tokens
                self._clock = max(self._clock, head.order[1])
                head.future.set_result(None)
                continue
            grant = await self.source.acquire(
                self._wanted(head), head.tokens, priority=head.priority, flow=self._flow,
                deadline=head.deadline, finished=self._take_finished(), heard=self._take_heard(),
            )  # fmt: skip
            if grant.requests == 0:
                heapq.heappop(self._queue)
                if not head.future.done():
                    head.future.set_exception(self._refusal(grant.wait_s, None, None))
                continue
            self._lease = _Lease(
                lease.requests + grant.requests, lease.tokens + grant.tokens, grant.expires_at
            )
            self._arm_expiry(grant.expires_at)

    def _take_finished(self) -> Finished | None:
        finished, self._finished = self._finished, Finished()
        return finished if finished.requests else None

    def _take_heard(self) -> Heard | None:
        heard, self._heard = self._heard, Heard()
        return heard if heard.reports or heard.paused_until else None

    def _wanted(self, head: _Call) -> int:
        """Requests to lease: every call waiting (so a priority takes what the key has at
        once), else the recent pace within a lease period's refill."""
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < self.limits.lease_s]
        return max(1, len(self._queue), min(self.limits.per_lease(), len(self._recent)))

    def _arm_expiry(self, expires_at: float) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, expires_at - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        if self._lease.expires_at <= time.time() and not self._queue:
            self._return_lease()

    def _return_lease(self) -> None:
        lease, self._lease = self._lease, _Lease()
        if lease.requests > 0 or lease.tokens > 0:
            self.source.release(max(0, lease.requests), max(0, lease.tokens))

    def _refusal(self, wait: float | None, agent: str | None, trace: str | None) -> Exception:
        when = f"in about {wait:.2f} s" if wait is not None else "in time"
        return RateLimitedError(
            f"{self.model}'s rate limit (key {self.key}) has no capacity for the call before "
            f"its deadline: capacity comes {when}",
            model=self.model,
            key=self.key,
            retry_in=wait,
            agent=agent,
            trace_id=trace,
            hint="give the call a longer deadline, raise its priority, or raise the key's "
            "limits (limits: in the agent's spec)",
        )
