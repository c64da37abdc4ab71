"""The authority over one key's capacity: two token buckets and the queue of waiting leases.

One `KeyScheduler` exists per key in the whole cluster (inside the limiter actor; in the
process itself when Ray is not running). It grants leases of capacity in priority order
(higher first) and, within a priority, round robin over flows (a flow is one conversation
or one process), so a busy conversation cannot starve a quiet one. A request that the
queue ahead and the refill rate say cannot be served before its deadline is refused at
once, with the estimated wait, instead of waiting to the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

from actors.ratelimit._headers import LimitReport
from actors.ratelimit._limits import RateLimits

__all__ = ["Finished", "Grant", "Heard", "KeyScheduler"]


@dataclass
class Grant:
    """The answer to a lease request: capacity granted, or a refusal with the wait."""

    requests: int = 0
    tokens: int = 0
    #: Epoch seconds after which unused capacity must be returned.
    expires_at: float = 0.0
    #: On a refusal: the estimated seconds until capacity, or None if unknowable.
    wait_s: float | None = None
    #: Seconds the grant waited in the queue.
    waited_s: float = 0.0


class _Bucket:
    """A token bucket of `limit` per `window_s`, full at start, that counts what is in flight.

    Capacity granted stays "in flight" until the calls are reported finished, and the
    bucket refills only while level plus in flight is below its size. The provider's own
    bucket can then never be emptier than this one's level: a granted request that
    reaches the provider late (a lease held, a slow SDK, a cold process) was counted all
    along, so the refill the provider drops while it is full is never counted on here.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        self.rate = limit / window_s
        self.size = float(limit)
        self.level = float(limit)
        self.in_flight = 0.0
        self.stamp = time.monotonic()

    def refill(self, now: float) -> None:
        room = self.size - self.in_flight
        if self.level < room:
            self.level = min(room, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def eta(self, need: float) -> float:
        """Seconds until `need` (capped at the bucket's size) is available."""
        short = min(need, self.size) - self.level
        return max(0.0, short / self.rate)

    def resize(self, limit: int, window_s: float) -> None:
        self.rate = limit / window_s
        self.size = float(limit)
        self.level = min(self.size, self.level)

    def take(self, amount: float) -> None:
        self.level -= amount
        self.in_flight += amount

    def finish(self, amount: float, *, unused: bool = False) -> None:
        """Calls are over (or never made, `unused`: their capacity comes back)."""
        amount = min(amount, self.in_flight)
        self.in_flight -= amount
        if unused:
            self.level += amount


@dataclass
class Finished:
    """What a process reports of its calls that ended: how many, their estimated tokens,
    and the tokens they used beyond their estimates (negative: fewer)."""

    requests: int = 0
    tokens: int = 0
    correction: int = 0

    def add(self, estimated: int, used: int) -> None:
        """Count one finished call."""
        self.requests += 1
        self.tokens += estimated
        self.correction += used - estimated


@dataclass
class Heard:
    """What a process heard from the provider since its last lease request.

    Sent on its own at once (for every other process using the key) and again inside
    the next lease request: Ray does not order calls to an async actor, so headers or a
    429 sent alone could reach the scheduler after the lease they should have limited.
    Hearing the same thing twice changes nothing: limits are set, not added, what
    remains only lowers the level, and a pause runs to the same end.
    """

    reports: dict[str, LimitReport] = field(default_factory=dict)
    #: Epoch seconds until which the provider asked for a pause (a 429); 0: none.
    paused_until: float = 0.0


@dataclass(order=True)
class _Waiter:
    order: tuple[int, int, int]
    requests: int = field(compare=False)
    tokens_each: int = field(compare=False)
    deadline: float = field(compare=False)
    queued: float = field(compare=False)
    future: asyncio.Future[Grant] = field(compare=False)


class KeyScheduler:
    """Capacity of one key: requests and tokens buckets, a pause, and waiting leases."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.requests = self._bucket(limits.requests)
        self.tokens = self._bucket(limits.tokens)
        self.paused_until = 0.0
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._turns: dict[str, int] = {}
        self._clock = 0
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0
        self.refused = 0

    async def acquire(
        self, requests: int, tokens_each: int, *, priority: int, flow: str, deadline: float,
        finished: Finished | None = None, heard: Heard | None = None,
    ) -> Grant:  # fmt: skip
        """Wait for a lease of 1 to `requests` requests with `tokens_each` tokens apiece.

        `finished` reports the caller's calls that ended since its last report, `heard`
        what the provider told it since its last request (applied before this lease).
        Returns a refusal (``requests == 0``) at once when the deadline cannot be met.
        """
        if finished is not None:
            self.finish(finished)
        if heard is not None:
            self.observe(heard.reports)
            if heard.paused_until > time.time():
                self.pause(heard.paused_until - time.time())
        turn = max(self._turns.get(flow, 0), self._clock) + 1
        self._turns[flow] = turn
        waiter = _Waiter(
            (-priority, turn, next(self._seq)), max(1, requests), max(0, tokens_each),
            deadline, time.monotonic(), asyncio.get_running_loop().create_future(),
        )  # fmt: skip
        wait = self._wait_for(waiter)
        if time.time() + wait > deadline:
            self.refused += 1
            return Grant(wait_s=wait)
        heapq.heappush(self._queue, waiter)
        self._serve()
        return await waiter.future

    def release(self, requests: int, tokens: int) -> None:
        """Take back a lease's unused capacity."""
        self._finish(requests, tokens, unused=True)

    def finish(self, finished: Finished) -> None:
        """Take a report of finished calls: no longer in flight; tokens corrected."""
        self._finish(finished.requests, finished.tokens, unused=False)
        if self.tokens is not None and finished.correction:
            self.tokens.level = min(self.tokens.size, self.tokens.level - finished.correction)
        self._serve()

    def _finish(self, requests: int, tokens: int, *, unused: bool) -> None:
        now = time.monotonic()
        for bucket, amount in ((self.requests, requests), (self.tokens, tokens)):
            if bucket is not None and amount:
                bucket.refill(now)
                bucket.finish(amount, unused=unused)
        self._serve()

    def pause(self, seconds: float) -> None:
        """Grant nothing for `seconds` (a 429's ``retry-after``, or nothing remaining)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        self._serve()

    def observe(self, reports: dict[str, LimitReport]) -> None:
        """Adopt the limits the provider's headers report, and never count on more than it
        says remains (a full pause comes only with a 429's ``retry-after``)."""
        window = self.limits.window_s
        for dim, report in reports.items():
            bucket = self.requests if dim == "requests" else self.tokens
            if report.limit is not None:
                if bucket is None:
                    setattr(self, dim, self._bucket(report.limit))
                elif round(bucket.rate * window) != report.limit:
                    bucket.resize(report.limit, window)
            bucket = self.requests if dim == "requests" else self.tokens
            if bucket is not None and report.remaining is not None:
                bucket.refill(time.monotonic())
                # What remained then, plus what has refilled since it was read.
                age = 0.0 if report.at is None else max(0.0, time.time() - report.at)
                bucket.level = min(bucket.level, report.remaining + age * bucket.rate)
        self._serve()

    def _bucket(self, limit: int | None) -> _Bucket | None:
        return None if limit is None else _Bucket(limit, self.limits.window_s)

    def _wait_for(self, waiter: _Waiter) -> float:
        """Estimate the seconds until `waiter` could be served, behind the queue ahead."""
        now = time.monotonic()
        ahead = [w for w in self._queue if w.order < waiter.order]
        wait = max(0.0, self.paused_until - now)
        for bucket, need in (
            (self.requests, sum(w.requests for w in ahead) + 1),
            (self.tokens, sum(w.requests * w.tokens_each for w in ahead) + waiter.tokens_each),
        ):
            if bucket is not None:
                bucket.refill(now)
                # A queue longer than one bucket takes whole windows to drain.
                wait = max(wait, (need - bucket.level) / bucket.rate)
        return wait

    def _serve(self) -> None:
        """Grant the queue's head while capacity lasts; then sleep until it could be served."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # its caller went away
                heapq.heappop(self._queue)
                continue
            now = time.monotonic()
            wait = max(0.0, self.paused_until - now)
            for bucket, need in ((self.requests, 1), (self.tokens, head.tokens_each)):
                if bucket is not None:
                    bucket.refill(now)
                    wait = max(wait, bucket.eta(need))
            if wait > 0:
                if time.time() + wait > head.deadline:
                    heapq.heappop(self._queue)
                    self.refused += 1
                    head.future.set_result(Grant(wait_s=wait))
                    continue
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(wait, self._serve)
                return
            heapq.heappop(self._queue)
            self._clock = max(self._clock, head.order[1])
            head.future.set_result(self._grant(head, now))

    def _grant(self, head: _Waiter, now: float) -> Grant:
        """Grant as many of the head's requests as both buckets cover now (at least 1)."""
        count = head.requests
        if self.requests is not None:
            count = min(count, int(self.requests.level))
        if self.tokens is not None and head.tokens_each:
            count = min(count, int(self.tokens.level // head.tokens_each))
        count = max(1, count)
        tokens = count * head.tokens_each
        if self.requests is not None:
            self.requests.take(count)
        if self.tokens is not None:
            self.tokens.take(tokens)
        self.granted += count
        return Grant(
            requests=count, tokens=tokens, expires_at=time.time() + self.limits.lease_s,
            waited_s=now - head.queued,
        )  # fmt: skip
