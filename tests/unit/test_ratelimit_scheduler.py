"""The key scheduler and the process limiter without Ray: leases in priority order, round
robin over flows, refusals at once when the deadline cannot be met, pauses, headers."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from actors import RateLimitedError
from actors.ratelimit import (
    LIMITS_VARIABLE,
    Finished,
    KeyScheduler,
    LimitReport,
    RateLimiter,
    RateLimits,
    actor_name,
    call_priority,
    fingerprint,
    limits_for,
    rate_limits,
    read_headers,
)
from mesh import ConfigError


async def test_a_full_bucket_grants_a_batch_then_makes_the_next_wait_for_the_refill() -> None:
    scheduler = KeyScheduler(RateLimits(requests=10, window_s=1.0))
    far = time.time() + 10
    grant = await scheduler.acquire(20, 0, priority=0, flow="a", deadline=far)
    assert grant.requests == 10  # what the bucket holds, not more
    scheduler.finish(Finished(requests=10))
    started = time.monotonic()
    grant = await scheduler.acquire(1, 0, priority=0, flow="a", deadline=far)
    assert grant.requests == 1
    assert 0.07 < time.monotonic() - started < 5.0  # refills in 0.1 s, not at the 10 s deadline


async def test_a_lease_that_cannot_come_before_the_deadline_is_refused_at_once() -> None:
    scheduler = KeyScheduler(RateLimits(requests=1, window_s=10.0))
    far = time.time() + 60
    await scheduler.acquire(1, 0, priority=0, flow="a", deadline=far)
    started = time.monotonic()
    grant = await scheduler.acquire(1, 0, priority=0, flow="a", deadline=time.time() + 1.0)
    assert grant.requests == 0
    assert grant.wait_s is not None
    assert 9.0 < grant.wait_s <= 10.0
    assert time.monotonic() - started < 0.5  # at once, not at the 1 s deadline
    assert scheduler.refused == 1


async def _order_of(scheduler: KeyScheduler, asks: list[tuple[str, int]]) -> list[str]:
    """Queue `asks` (flow, priority) behind an empty bucket; return the order they are served."""
    served: list[str] = []
    far = time.time() + 30

    async def one(flow: str, priority: int) -> None:
        grant = await scheduler.acquire(1, 0, priority=priority, flow=flow, deadline=far)
        assert grant.requests == 1
        served.append(flow)
        scheduler.finish(Finished(requests=1))  # the call is over

    tasks = []
    for flow, priority in asks:
        tasks.append(asyncio.create_task(one(flow, priority)))
        await asyncio.sleep(0)  # queued in this order
    await asyncio.gather(*tasks)
    return served


async def test_leases_go_by_priority_then_round_robin_over_flows() -> None:
    # A request refills every 100 ms: the seven asks are all queued long before the first
    # grant, even on a loaded machine (at 20 ms, a busy one was once served first).
    scheduler = KeyScheduler(RateLimits(requests=50, window_s=5.0, lease_s=0.1))
    await scheduler.acquire(50, 0, priority=0, flow="x", deadline=time.time() + 5)  # drained
    scheduler.finish(Finished(requests=50))
    busy = [("busy", 0)] * 4
    served = await _order_of(scheduler, [*busy, ("quiet", 0), ("quiet", 0), ("urgent", 5)])
    assert served[0] == "urgent"
    # The quiet flow, queued after four of the busy one's, is not served after all of them.
    assert served[1:5] == ["busy", "quiet", "busy", "quiet"]


async def test_capacity_in_flight_is_not_refilled_until_its_calls_are_reported_over() -> None:
    scheduler = KeyScheduler(RateLimits(requests=4, window_s=0.4))
    far = time.time() + 10
    assert (await scheduler.acquire(4, 0, priority=0, flow="a", deadline=far)).requests == 4
    await asyncio.sleep(0.5)  # a whole window: the provider's bucket may be full again...
    # ...but the four granted requests may still be on their way to it: nothing to grant.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await scheduler.acquire(1, 0, priority=0, flow="a", deadline=far)
    scheduler.finish(Finished(requests=3))  # three are over: room to refill by three
    await asyncio.sleep(0.4)
    grant = await scheduler.acquire(4, 0, priority=0, flow="a", deadline=far)
    assert grant.requests == 3
    scheduler.release(2, 0)  # two of them were never used
    assert (await scheduler.acquire(4, 0, priority=0, flow="a", deadline=far)).requests == 2


async def test_a_pause_holds_every_lease_until_it_ends() -> None:
    scheduler = KeyScheduler(RateLimits(requests=100, window_s=1.0))
    scheduler.pause(0.3)
    started = time.monotonic()
    grant = await scheduler.acquire(1, 0, priority=0, flow="a", deadline=time.time() + 5)
    assert grant.requests == 1
    assert time.monotonic() - started >= 0.28


async def test_tokens_limit_a_lease_and_settling_corrects_the_estimate() -> None:
    scheduler = KeyScheduler(RateLimits(requests=100, tokens=1000, window_s=10.0))
    far = time.time() + 30
    grant = await scheduler.acquire(10, 300, priority=0, flow="a", deadline=far)
    assert (grant.requests, grant.tokens) == (3, 900)  # the tokens bound it, not the requests
    # The three calls used 200 tokens each, 300 fewer in all than estimated.
    scheduler.finish(Finished(requests=3, tokens=900, correction=-300))
    grant = await scheduler.acquire(10, 300, priority=0, flow="a", deadline=far)
    assert grant.requests == 1
    assert grant.waited_s < 0.05


async def test_headers_adopt_the_providers_limits_and_what_it_says_remains() -> None:
    scheduler = KeyScheduler(RateLimits(requests=5, window_s=1.0))
    scheduler.observe({"requests": LimitReport(limit=50, remaining=0, reset_s=0.25)})
    assert scheduler.requests is not None
    assert scheduler.requests.rate == 50
    assert scheduler.requests.level <= 0.01  # nothing remains: none counted on
    grant = await scheduler.acquire(1, 0, priority=0, flow="a", deadline=time.time() + 5)
    assert grant.requests == 1
    assert 0.01 < grant.waited_s < 0.2  # one request refills in 0.02 s at 50 a second


def test_openai_and_anthropic_headers_read_alike() -> None:
    openai = read_headers({
        "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "1m0.5s", "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "20ms",
    })  # fmt: skip
    assert openai["requests"] == LimitReport(500, 499, 60.5)
    assert openai["tokens"] == LimitReport(30000, 29000, 0.02)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
    anthropic = read_headers({
        "Anthropic-Ratelimit-Requests-Limit": "50", "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": at,
    })  # fmt: skip
    report = anthropic["requests"]
    assert (report.limit, report.remaining) == (50, 0)
    assert report.reset_s is not None
    assert 28 < report.reset_s <= 30
    assert read_headers({"x-ratelimit-limit-requests": "lots"}) == {}


def test_the_fingerprint_names_the_actor_and_never_holds_the_key() -> None:
    key = "sk-live-abcdefghijklmnopqrstuvwxyz0123456789"
    digest = fingerprint("openai", "gpt-4o-mini", api_key=key, base_url="")
    assert len(digest) == 16
    assert key not in actor_name(digest)
    assert key[:8] not in digest
    assert digest != fingerprint("openai", "gpt-4o-mini", api_key=key, base_url="http://proxy")
    assert digest != fingerprint("openai", "gpt-4o", api_key=key, base_url="")


def test_limits_come_per_model_or_per_provider_and_bad_ones_are_config_errors() -> None:
    table = {"openai": {"requests": 10}, "openai:gpt-4o": {"requests": 99}}
    assert limits_for("openai:gpt-4o", table) == {"requests": 99}
    assert limits_for("openai:gpt-4o-mini", table) == {"requests": 10}
    assert limits_for("anthropic:claude-sonnet-4-5", table) is None
    with pytest.raises(ConfigError, match="not usable") as caught:
        rate_limits({"requests": 0}, agent="a")
    assert caught.value.hint
    assert caught.value.agent == "a"
    with pytest.raises(ConfigError):
        rate_limits({"rpm": 5}, agent="a")


def test_the_setting_gives_the_limits_an_agents_options_do_not_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LIMITS_VARIABLE, '{"anthropic": {"requests": 7}, "openai": {"requests": 3}}')
    table = {"openai": {"requests": 10}}
    assert limits_for("openai:gpt-4o", table) == {"requests": 10}  # the agent's own wins
    assert limits_for("anthropic:claude-sonnet-4-5", table) == {"requests": 7}
    assert limits_for("offline:echo", None) is None
    monkeypatch.setenv(LIMITS_VARIABLE, "{openai: 3}")
    with pytest.raises(ConfigError, match="RAYMESH_RATE_LIMITS is not JSON"):
        limits_for("openai:gpt-4o", None)
    monkeypatch.setenv(LIMITS_VARIABLE, "[1, 2]")
    with pytest.raises(ConfigError, match="must map model strings"):
        limits_for("openai:gpt-4o", None)


async def test_the_limiter_fails_a_call_at_once_with_a_typed_error_naming_the_fingerprint() -> None:
    limits = RateLimits(requests=1, window_s=30.0)
    # In-process, whether or not this test process has started Ray for other tests.
    limiter = RateLimiter("0123456789abcdef", limits, model="m:x", source=KeyScheduler(limits))
    await limiter.acquire(10, deadline=time.time() + 5, trace_id="t1")
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        await limiter.acquire(10, deadline=time.time() + 2, trace_id="t2", agent="a1")
    assert time.monotonic() - started < 1.0  # at once, not at the 2 s deadline
    error = caught.value
    assert (error.key, error.agent, error.trace_id) == ("0123456789abcdef", "a1", "t2")
    assert error.retry_in is not None
    assert error.retry_in > 20
    assert error.hint


async def test_the_limiter_serves_a_message_priority_before_the_agents_own() -> None:
    limits = RateLimits(requests=10, window_s=1.0, lease_s=0.1)
    limiter = RateLimiter("f" * 16, limits, model="m:x", source=KeyScheduler(limits))
    for _ in range(10):
        await limiter.acquire(1, deadline=time.time() + 5)
        limiter.finish(1, 1)
    served: list[str] = []

    async def one(name: str, priority: int | None) -> None:
        call_priority.set(priority)
        await limiter.acquire(1, deadline=time.time() + 5, trace_id=name)
        served.append(name)

    tasks = [asyncio.create_task(one(f"low{i}", None)) for i in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(one("high", 9)))
    await asyncio.gather(*tasks)
    assert served[0] == "high"


class _LateNews:
    """A key scheduler whose headers and pauses sent alone arrive a second late, as Ray
    may deliver calls to an async actor: after the lease request sent behind them."""

    def __init__(self, scheduler: KeyScheduler) -> None:
        self.scheduler = scheduler
        self.acquire = scheduler.acquire
        self.release = scheduler.release
        self.finish = scheduler.finish

    def observe(self, reports: dict[str, LimitReport]) -> None:
        asyncio.get_running_loop().call_later(1.0, self.scheduler.observe, reports)

    def pause(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(1.0, self.scheduler.pause, seconds)


async def test_headers_limit_the_next_lease_even_when_they_arrive_alone_after_it() -> None:
    limits = RateLimits(requests=1000, window_s=1.0, lease_s=0.1)
    limiter = RateLimiter("e" * 16, limits, model="m:x", source=_LateNews(KeyScheduler(limits)))
    await limiter.acquire(1, deadline=time.time() + 5)
    limiter.finish(1, 1)
    # The provider says 5 a second, 4 left: far below the 1000 configured.
    limiter.observe({"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4"})
    started = time.monotonic()
    granted: list[float] = []

    async def one() -> None:
        await limiter.acquire(1, deadline=time.time() + 10)
        granted.append(time.monotonic() - started)
        limiter.finish(1, 1)

    await asyncio.gather(*(one() for _ in range(12)))
    # The 4 left at once, then one each 0.2 s: not 12 under the configured 1000.
    assert sum(t < 0.15 for t in granted) <= 4
    assert max(granted) >= 1.2


async def test_a_429_holds_the_next_lease_even_when_its_pause_arrives_alone_after_it() -> None:
    limits = RateLimits(requests=1000, window_s=1.0, lease_s=0.1)
    limiter = RateLimiter("d" * 16, limits, model="m:x", source=_LateNews(KeyScheduler(limits)))
    await limiter.acquire(1, deadline=time.time() + 5)
    limiter.pause(0.5)  # the provider's 429: retry after half a second
    started = time.monotonic()
    await limiter.acquire(1, deadline=time.time() + 5)
    assert 0.45 <= time.monotonic() - started < 0.95  # the pause, not the late copy


async def test_a_report_applied_late_credits_the_refill_since_it_was_read() -> None:
    scheduler = KeyScheduler(RateLimits(requests=10, window_s=1.0))
    read = read_headers({"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0"})
    late = {"requests": dataclasses.replace(read["requests"], at=time.time() - 0.5)}
    scheduler.observe(late)
    assert scheduler.requests is not None
    assert 4.9 <= scheduler.requests.level <= 5.1  # 0 then, 10 a second for half a second
