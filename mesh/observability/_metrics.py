"""Per-agent metrics in Ray's metrics system: its Prometheus endpoint and its dashboard.

A host counts what its agent does in plain ints and dicts (well under a microsecond a
message) and hands the figures to ``ray.util.metrics`` once a second, off the message
path: a Ray metric call costs several microseconds, too much for every message. The
handler latency histogram gets a uniform sample of at most `LATENCY_SAMPLES` handled
messages a second (messages counts all of them). ``MeshConfig.metrics`` turns it off.

Series (Ray adds the ``ray_`` prefix, and ``_total`` to counters), all tagged ``agent``:

==================================  ======================================================
``raymesh_messages_in``             messages handled, by ``type``
``raymesh_messages_out``            messages sent (asks and tells), by ``type``
``raymesh_handler_seconds``         handler latency (sampled), by ``type``
``raymesh_mailbox_depth``           messages waiting (a gauge)
``raymesh_errors``                  messages whose handling failed, by ``error`` type
``raymesh_deadlocks_broken``        deadlock cycles this agent broke
``raymesh_restarts``                restarts by its supervisor, by ``team``
``raymesh_model_tokens``            model tokens, by ``model`` and ``direction`` (in/out)
``raymesh_model_cost_usd``          model cost in US dollars, by ``model``
``raymesh_compat_failures``         start-up self-checks of a private Ray or CPython touch
                                    that failed, by ``check`` and ``ray_version``
==================================  ======================================================
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from mesh.observability._stats import AgentStats

__all__ = ["FLUSH_S", "LATENCY_SAMPLES", "HostMetrics", "count_compat_failure", "count_restart"]

#: Seconds between a host's hand-overs of its figures to Ray.
FLUSH_S = 1.0
#: Handler latencies given to the histogram per flush, at most (a uniform sample).
LATENCY_SAMPLES = 200
_BOUNDARIES = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0, 30.0, 60.0]  # fmt: skip


@dataclass(frozen=True)
class _Instruments:
    messages_in: Counter
    messages_out: Counter
    handler_seconds: Histogram
    mailbox_depth: Gauge
    errors: Counter
    deadlocks_broken: Counter
    restarts: Counter
    model_tokens: Counter
    model_cost: Counter
    compat_failures: Counter


@cache
def _instruments() -> _Instruments:
    # Made once per process, when first needed: Ray must be up by then.
    return _Instruments(
        messages_in=Counter("raymesh_messages_in", "Messages handled, by type.",
                            tag_keys=("agent", "type")),
        messages_out=Counter("raymesh_messages_out", "Messages sent (asks, tells), by type.",
                             tag_keys=("agent", "type")),
        handler_seconds=Histogram("raymesh_handler_seconds",
                                  "Handler latency in seconds (sampled), by message type.",
                                  boundaries=_BOUNDARIES, tag_keys=("agent", "type")),
        mailbox_depth=Gauge("raymesh_mailbox_depth", "Messages waiting in the mailbox.",
                            tag_keys=("agent",)),
        errors=Counter("raymesh_errors", "Messages whose handling failed, by error type.",
                       tag_keys=("agent", "error")),
        deadlocks_broken=Counter("raymesh_deadlocks_broken", "Deadlock cycles broken.",
                                 tag_keys=("agent",)),
        restarts=Counter("raymesh_restarts", "Agent restarts by its supervisor.",
                         tag_keys=("agent", "team")),
        model_tokens=Counter("raymesh_model_tokens", "Model tokens, by model and direction.",
                             tag_keys=("agent", "model", "direction")),
        model_cost=Counter("raymesh_model_cost_usd", "Model cost in US dollars, by model.",
                           tag_keys=("agent", "model")),
        compat_failures=Counter("raymesh_compat_failures",
                                "Failed start-up self-checks of a private Ray or CPython touch.",
                                tag_keys=("agent", "check", "ray_version")),
    )  # fmt: skip


def count_restart(agent: str, team: str) -> None:
    """Count a restart of `agent` by the supervisor of `team` (rare: straight to Ray)."""
    _instruments().restarts.inc(1, tags={"agent": agent, "team": team})


def count_compat_failure(agent: str, check: str, ray_version: str) -> None:
    """Count a failed self-check of `check` at the start of `agent` (rare: straight to Ray)."""
    tags = {"agent": agent, "check": check, "ray_version": ray_version}
    _instruments().compat_failures.inc(1, tags=tags)


class HostMetrics:
    """One agent's figures, counted cheaply and handed to Ray every `FLUSH_S`.

    Args:
        agent: The agent's name (the ``agent`` tag).
        stats: The host's counters (deadlocks broken, model usage).
        sent: Messages the agent sent, by type (kept by its endpoint).
        mailbox_depth: Returns the messages waiting now.
    """

    def __init__(
        self,
        agent: str,
        *,
        stats: AgentStats,
        sent: Mapping[str, int],
        mailbox_depth: Callable[[], int],
    ) -> None:
        self._agent = {"agent": agent}
        self._stats = stats
        self._sent = sent
        self._mailbox_depth = mailbox_depth
        self._handled: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._latencies: list[tuple[str, float]] = []
        self._seen = 0  # handled since the last flush, for the uniform sample
        # What Ray was last given of the running totals kept elsewhere.
        self._given: dict[Any, float] = {}

    def handled(self, message_type: str, seconds: float | None, error: str | None) -> None:
        """Count a handled message: its type, its handler's run time, its error type if any.

        `seconds` is None for a message that expired before its handler could run.
        """
        self._handled[message_type] = self._handled.get(message_type, 0) + 1
        if error is not None:
            self._errors[error] = self._errors.get(error, 0) + 1
        if seconds is None:
            return
        self._seen += 1
        if len(self._latencies) < LATENCY_SAMPLES:
            self._latencies.append((message_type, seconds))
        else:  # reservoir sampling: every message equally likely to be kept
            slot = random.randrange(self._seen)
            if slot < LATENCY_SAMPLES:
                self._latencies[slot] = (message_type, seconds)

    async def run(self) -> None:
        """Hand the figures to Ray every `FLUSH_S`, off the message path."""
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        """Hand what was counted since the last flush to Ray (also when the host stops)."""
        ray_metrics = _instruments()
        handled, self._handled = self._handled, {}
        errors, self._errors = self._errors, {}
        latencies, self._latencies, self._seen = self._latencies, [], 0
        for message_type, count in handled.items():
            ray_metrics.messages_in.inc(count, tags={**self._agent, "type": message_type})
        for error, count in errors.items():
            ray_metrics.errors.inc(count, tags={**self._agent, "error": error})
        for message_type, seconds in latencies:
            ray_metrics.handler_seconds.observe(seconds, tags={**self._agent, "type": message_type})
        ray_metrics.mailbox_depth.set(self._mailbox_depth(), tags=self._agent)
        for message_type, total in list(self._sent.items()):
            self._give(ray_metrics.messages_out, ("out", message_type), total,
                       {**self._agent, "type": message_type})  # fmt: skip
        self._give(ray_metrics.deadlocks_broken, "deadlocks", self._stats.deadlocks_broken,
                   self._agent)  # fmt: skip
        for model, usage in self._stats.models.items():
            tags = {**self._agent, "model": model}
            self._give(ray_metrics.model_tokens, ("in", model), usage.input_tokens,
                       {**tags, "direction": "in"})  # fmt: skip
            self._give(ray_metrics.model_tokens, ("out-tokens", model), usage.output_tokens,
                       {**tags, "direction": "out"})  # fmt: skip
            self._give(ray_metrics.model_cost, ("cost", model), usage.cost_usd, tags)

    def _give(self, counter: Counter, key: Any, total: float, tags: dict[str, str]) -> None:
        # A running total kept elsewhere: Ray's counter takes what it grew by.
        grown = total - self._given.get(key, 0)
        if grown > 0:
            counter.inc(grown, tags=tags)
            self._given[key] = total
