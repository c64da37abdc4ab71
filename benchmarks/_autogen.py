"""The peer baseline: the topology suite's ring workload on autogen-core's in-process runtime.

A standalone script, run by `benchmarks.peer` with the interpreter of autogen-core's own
virtualenv (autogen-core cannot live next to Ray): it imports neither Ray nor raymesh,
reads one ring's parameters as JSON on stdin and writes its figures as JSON on stdout.
No ``from __future__ import annotations``: autogen's ``message_handler`` reads the
handler's type hints at class creation, so the message classes must be real names.

autogen-core's `SingleThreadedAgentRuntime` runs every agent in this one process and
event loop: no serialization, no process hop. It is the cost floor of an in-process
framework, not a distributed one; that is what the comparison says, nothing more.
"""

import asyncio
import json
import sys
import time
from dataclasses import dataclass

from autogen_core import (
    AgentId,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    TopicId,
    TypeSubscription,
    message_handler,
)

__all__ = ["run_ring"]

_TYPE = "topo"


@dataclass
class ALoad:
    """The payload. A str, not bytes: autogen JSON-serializes published messages."""

    body: str
    ask: bool


@dataclass
class AReply:
    """An ask's empty answer."""

    body: str


@dataclass
class ABurst:
    """Tells one agent to send its share of the workload to its ring successor."""

    target: int
    ask: bool
    count: int
    window: int
    payload_bytes: int


@dataclass
class ADone:
    """What a burst took: start, end (perf_counter) and per-ask latencies."""

    started: float
    ended: float
    latencies_ms: list[float]


class _State:
    """Receipt counting shared by the agents of one run (they live in this process)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.last_rx = 0.0
        self.all_in = asyncio.Event()

    def got(self) -> None:
        self.received += 1
        self.last_rx = time.perf_counter()
        if self.received >= self.expected:
            self.all_in.set()


class RingNode(RoutedAgent):
    """Sends a windowed burst to its successor; counts and answers loads."""

    def __init__(self, state: _State) -> None:
        super().__init__("topology ring node")
        self._state = state

    @message_handler
    async def on_load(self, message: ALoad, ctx: MessageContext) -> AReply | None:
        self._state.got()
        return AReply(body="") if message.ask else None

    @message_handler
    async def on_burst(self, message: ABurst, ctx: MessageContext) -> ADone:
        load = ALoad(body="x" * message.payload_bytes, ask=message.ask)
        latencies: list[float] = []
        target = str(message.target)
        left = message.count

        async def lane() -> None:  # the same harness as the raymesh and Ray rows
            nonlocal left
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                if message.ask:
                    await self.send_message(load, AgentId(_TYPE, target))
                else:
                    await self.publish_message(load, TopicId(_TYPE, source=target))
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(min(message.window, message.count))))
        return ADone(started=started, ended=time.perf_counter(), latencies_ms=latencies)


async def run_ring(
    n: int, *, ask: bool, count: int, window: int, payload_bytes: int
) -> tuple[float, list[float], float]:
    """Run the ring once on a fresh runtime; return (seconds, ask latencies, CPU seconds).

    Tells are published (autogen's fire-and-forget), so the clock stops when the last
    one is handled, as it does for the mesh and Ray rows.
    """
    state = _State(expected=n * count)
    runtime = SingleThreadedAgentRuntime()
    await RingNode.register(runtime, _TYPE, lambda: RingNode(state))
    await runtime.add_subscription(TypeSubscription(topic_type=_TYPE, agent_type=_TYPE))
    runtime.start()
    try:
        burst = ABurst(target=0, ask=ask, count=count, window=window, payload_bytes=payload_bytes)
        cpu0 = time.process_time()
        done: list[ADone] = await asyncio.gather(
            *(
                runtime.send_message(
                    ABurst(**{**burst.__dict__, "target": (i + 1) % n}), AgentId(_TYPE, str(i))
                )
                for i in range(n)
            )
        )
        await asyncio.wait_for(state.all_in.wait(), timeout=120)
        cpu = time.process_time() - cpu0
        started = min(d.started for d in done)
        ended = max(*(d.ended for d in done), state.last_rx)
        latencies = [lat for d in done for lat in d.latencies_ms] if ask else []
        return ended - started, latencies, cpu
    finally:
        await runtime.stop()


def main() -> None:
    """Run the ring described on stdin (`run_ring`'s arguments); print its figures."""
    params = json.load(sys.stdin)
    seconds, latencies, cpu = asyncio.run(run_ring(**params))
    json.dump({"seconds": seconds, "latencies_ms": latencies, "cpu_s": cpu}, sys.stdout)


if __name__ == "__main__":
    main()
