"""No ask hangs: deadlines, cycles in one chain and across chains, blocked loops, dead peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import ray
from _agents import (
    Block,
    CallPeer,
    CrossAsk,
    Crosser,
    Echo,
    Outcome,
    Ping,
    Pong,
    Relay,
    Relayer,
    Seen,
    SlowRelay,
)
from conftest import Spawn

from mesh import DeadlineExceededError, DeadlockError, Mesh

pytestmark = pytest.mark.ray

# How late an ask may end after its deadline here. The benchmark measures the real
# figure; this bound only proves that nothing waits on past the deadline.
EPSILON_S = 1.0


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("size", [2, 3, 5])
async def test_same_chain_cycle_fails_at_once_with_the_cycle_named(
    mesh: Mesh, spawn: Spawn, size: int
) -> None:
    agents = [(await spawn(Relayer, f"cyc{size}{chr(97 + i)}")).name for i in range(size)]
    route = [*agents[1:], agents[0]]  # A -> B -> ... -> A
    trace = f"{size:02d}" * 16
    start = time.monotonic()
    with pytest.raises(DeadlockError) as caught:
        await mesh.ask(agents[0], Relay(route=route), timeout=20, trace_id=trace)
    elapsed = time.monotonic() - start
    assert caught.value.cycle == [*agents, agents[0]]
    assert caught.value.agent == agents[0]
    assert caught.value.trace_id == trace
    assert elapsed < 5  # found from the chain, long before the 20 s deadline
    for name in agents:  # every agent is free again
        assert await mesh.ask(name, Relay(route=[]), timeout=5, expect=Seen)


async def test_concurrent_agents_are_not_reported_as_deadlocked(mesh: Mesh, spawn: Spawn) -> None:
    a = await spawn(Relayer, "reentrant-a", concurrency=4)
    b = await spawn(Relayer, "reentrant-b")
    seen = await mesh.ask(a.name, Relay(route=[b.name, a.name]), timeout=10, expect=Seen)
    assert [h["agent"] for h in seen.hops] == [a.name, b.name, a.name]


async def test_cross_chain_cycle_fails_exactly_one_ask_and_the_other_completes(
    mesh: Mesh, spawn: Spawn
) -> None:
    a = await spawn(Crosser, "cross-a")
    b = await spawn(Crosser, "cross-b")
    start = time.monotonic()
    results = await asyncio.gather(
        mesh.ask(a.name, CrossAsk(peer=b.name, delay=0.3), timeout=20),
        mesh.ask(b.name, CrossAsk(peer=a.name, delay=0.3), timeout=20),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - start
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1, results
    error = failed[0]
    assert isinstance(error, DeadlockError)
    owner = a.name if error is results[0] else b.name
    other = b.name if owner == a.name else a.name
    assert error.cycle in ([a.name, b.name, a.name], [b.name, a.name, b.name])
    assert error.agent == owner
    done = next(r for r in results if not isinstance(r, BaseException))
    assert done == Pong(text=f"{owner} saw {other}")
    assert elapsed < 10  # probes found it; the 20 s deadline was never reached
    broken = [(await mesh.stats(n)).deadlocks_broken for n in (a.name, b.name)]
    assert sum(broken) >= 1


async def test_fast_asks_send_no_probes_and_slow_ones_do(mesh: Mesh, spawn: Spawn) -> None:
    front = await spawn(Relayer, "probe-front")
    back = await spawn(Relayer, "probe-back")
    delay = mesh.config.probe_delay_s
    allowed = 0  # probes the asks may send: one a round while an ask waits past the delay
    for _ in range(100):
        started = time.monotonic()
        await mesh.ask(front.name, Relay(route=[back.name]), expect=Seen)
        allowed += int((time.monotonic() - started) / delay)
    # On a quiet machine none waits that long; on a loaded one a few may, and only those
    # may probe (the edge's time bounds the front's wait on the back).
    assert (await mesh.stats(front.name)).probes_sent <= allowed
    assert (await mesh.stats(back.name)).probes_received <= allowed
    assert (await mesh.stats(back.name)).probes_sent == 0
    # An ask that waits longer than the probe delay does send them.
    await mesh.ask(front.name, SlowRelay(route=[back.name], seconds=1.5), expect=Pong)
    assert (await mesh.stats(front.name)).probes_sent >= 1
    assert (await mesh.stats(back.name)).probes_received >= 1


async def test_probes_are_not_multiplied_by_a_busy_concurrent_agent(
    mesh: Mesh, spawn: Spawn
) -> None:
    # 16 waiting asks queue at `middle`, whose 4 handlers each wait on a serial `back`.
    # Only asks running at `middle` lead on to `back`: each round, at most 4 of its own
    # and 4 forwarded. Following every queued ask through all 4 handlers (the old fan
    # out) gave `back` several times more, and collapsed a hub of 512 handlers.
    origin = await spawn(Relayer, "fanout-origin", concurrency=16)
    middle = await spawn(Relayer, "fanout-middle", concurrency=4)
    back = await spawn(Relayer, "fanout-back")
    start = time.monotonic()
    slow = SlowRelay(route=[middle.name, back.name], seconds=0.25)
    await asyncio.gather(*(mesh.ask(origin.name, slow, timeout=30) for _ in range(16)))
    rounds = (time.monotonic() - start) / mesh.config.probe_delay_s + 2
    received = (await mesh.stats(back.name)).probes_received
    assert 0 < received <= 8 * rounds


async def test_handler_past_its_deadline_ends_the_ask_by_the_deadline(
    mesh: Mesh, spawn: Spawn
) -> None:
    relay = await spawn(Relayer, "late")
    deadline = time.time() + 0.8
    with pytest.raises(DeadlineExceededError) as caught:
        await mesh.ask(relay.name, SlowRelay(route=[], seconds=30), timeout=0.8)
    assert time.time() - deadline < EPSILON_S
    assert caught.value.agent == relay.name
    assert await mesh.ask(relay.name, Relay(route=[]), timeout=5, expect=Seen)


async def test_inner_asks_inherit_the_outer_deadline(mesh: Mesh, spawn: Spawn) -> None:
    names = [(await spawn(Relayer, f"inherit-{i}")).name for i in range(4)]
    seen = await mesh.ask(names[0], Relay(route=names[1:]), timeout=5, expect=Seen)
    deadlines = {float(str(h["deadline"])) for h in seen.hops}
    assert len(deadlines) == 1  # each hop asked with the default 20 s, capped at the edge's 5 s

    deadline = time.time() + 1.0
    with pytest.raises(DeadlineExceededError):
        await mesh.ask(names[0], SlowRelay(route=names[1:], seconds=30), timeout=1.0)
    assert time.time() - deadline < EPSILON_S


async def test_cancelled_ask_stops_the_work_it_started_downstream(mesh: Mesh, spawn: Spawn) -> None:
    names = [(await spawn(Relayer, f"cancel-{i}")).name for i in range(3)]
    asking = asyncio.create_task(
        mesh.ask(names[0], SlowRelay(route=names[1:], seconds=60), timeout=60)
    )
    await asyncio.sleep(0.5)  # let the chain reach the sleeper
    asking.cancel()

    async def sleeper_cancelled() -> bool:
        return (await mesh.stats(names[-1])).cancelled == 1

    await _eventually(sleeper_cancelled, within=5)
    # The innermost agent is free long before its 60 s sleep would have ended.
    assert await mesh.ask(names[-1], Relay(route=[]), timeout=5, expect=Seen)


async def test_blocked_event_loop_is_reported_unhealthy_and_the_asker_is_not_stuck(
    mesh: Mesh, spawn: Spawn
) -> None:
    blocker = await spawn(Crosser, "blocker")
    blocking = asyncio.create_task(mesh.ask(blocker.name, Block(seconds=4), timeout=1.0))

    async def unhealthy() -> bool:
        info = next(a for a in await mesh.agents() if a.name == blocker.name)
        return not info.healthy

    await _eventually(unhealthy, within=3.5)
    deadline = time.time() + 1.0 - 0.05
    with pytest.raises(DeadlineExceededError):
        await blocking
    assert time.time() - deadline < 4  # its own timer ended it, not the blocked host
    health = await (await mesh.actor(blocker.name)).health.remote()
    assert health["incarnation"] == blocker.incarnation

    async def healthy_again() -> bool:
        info = next(a for a in await mesh.agents() if a.name == blocker.name)
        return info.healthy

    await _eventually(healthy_again, within=10)
    assert await mesh.ask(blocker.name, Ping(text="x"), timeout=5, expect=Pong)


async def test_ask_between_agents_fails_with_peer_dead_when_the_peer_is_killed(
    mesh: Mesh, spawn: Spawn
) -> None:
    caller = await spawn(Crosser, "caller")
    callee = await spawn(Echo, "callee")
    calling = asyncio.create_task(
        mesh.ask(caller.name, CallPeer(peer=callee.name, seconds=30), timeout=30, expect=Outcome)
    )
    await asyncio.sleep(0.5)
    ray.kill(await mesh.actor(callee.name))
    outcome = await calling
    # The callee had accepted the ask and was running it: it may or may not have run.
    assert outcome.error_type == "OutcomeUnknownError"
    assert outcome.error_agent == callee.name
    assert outcome.seconds < 5  # as soon as Ray reports the death, not at the deadline
