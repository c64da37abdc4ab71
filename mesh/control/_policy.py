"""OTP supervision policy as a pure state machine: what to stop and start when a child exits.

The supervisor actor asks this policy for a `Plan` and carries it out; keeping the
decisions free of Ray makes them testable against a model of OTP semantics with
thousands of random event sequences.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Plan", "Policy", "RestartType", "Starvation", "Strategy"]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]


@dataclass(frozen=True)
class Plan:
    """What the supervisor does about one exit.

    Attributes:
        stop: Running children to stop, in this order (reverse start order).
        start: Children to start again, in this order (start order).
        give_up: Restart intensity was exceeded: stop everything and fail.
    """

    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    give_up: bool = False


@dataclass
class Policy:
    """Children in start order, which of them run, and the recent restarts.

    Args:
        strategy: one_for_one, one_for_all or rest_for_one.
        max_restarts: Restarts allowed within `within_s` seconds before giving up.
        within_s: The intensity window.
        children: (name, restart type) in start order.
    """

    strategy: Strategy
    max_restarts: int
    within_s: float
    children: list[tuple[str, RestartType]]
    running: set[str] = field(default_factory=set)
    restarts: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.running = {name for name, _ in self.children}

    def order(self) -> list[str]:
        """Return the children's names in start order."""
        return [name for name, _ in self.children]

    def exited(self, name: str, *, abnormal: bool, now: float) -> Plan:
        """Record that `name` exited and return what to do about it."""
        if name not in self.running:
            return Plan()  # already handled (e.g. stopped by a strategy)
        self.running.discard(name)
        kind = dict(self.children)[name]
        if kind == "temporary" or (kind == "transient" and not abnormal):
            if kind == "temporary":
                self.children = [c for c in self.children if c[0] != name]
            return Plan()
        self.restarts.append(now)
        while self.restarts and self.restarts[0] < now - self.within_s:
            self.restarts.popleft()
        if len(self.restarts) > self.max_restarts:
            stop = tuple(n for n in reversed(self.order()) if n in self.running)
            self.running.clear()
            return Plan(stop=stop, give_up=True)
        names = self.order()
        if self.strategy == "one_for_one":
            affected = [name]
        elif self.strategy == "one_for_all":
            affected = names
        else:
            affected = names[names.index(name) :]
        kinds = dict(self.children)
        stop = tuple(n for n in reversed(affected) if n in self.running and n != name)
        # Siblings the strategy stops are started again, except temporary ones (OTP);
        # siblings that were already down stay down.
        dropped = {n for n in stop if kinds[n] == "temporary"}
        self.children = [c for c in self.children if c[0] not in dropped]
        start = tuple(n for n in affected if n == name or (n in stop and n not in dropped))
        self.running.difference_update(stop)
        self.running.update(start)
        return Plan(stop=stop, start=start)


@dataclass
class Starvation:
    """How starved of CPU the supervisor's node is: the factor its patience is stretched by.

    A starved host and a hung one look alike from outside (a late answer, a lagging
    loop). What tells them apart is time: a blocked loop's lag grows without bound,
    a starved one's stays about as long as the machine makes everyone wait. So the
    limits that prove a child hung are multiplied by how starved the node is, measured
    by the node's run queue per CPU and by how late the supervisor's own ticks come
    (a slowdown remembered for `memory_s`, decaying), never by more than `cap`: a
    blocked loop is still replaced, later.

    Args:
        period_s: The supervisor's tick.
        cap: The most the limits are stretched.
        memory_s: How long (time constant) a measured slowdown of the ticks counts.
    """

    period_s: float
    cap: float = 20.0
    memory_s: float = 10.0
    # Measured, not given: the tick slowdown (and when), and the load per CPU last seen.
    _slowdown: float = field(default=1.0, init=False)
    _at: float = field(default=0.0, init=False)
    _load: float = field(default=1.0, init=False)

    def tick(self, *, late_s: float, now: float, load_per_cpu: float) -> None:
        """Record a tick `late_s` behind schedule, and the node's load per CPU now."""
        faded = 1.0 + (self._slowdown - 1.0) * math.exp(-(now - self._at) / self.memory_s)
        self._slowdown = max(faded, 1.0 + max(late_s, 0.0) / self.period_s)
        self._at = now
        self._load = load_per_cpu

    @property
    def factor(self) -> float:
        """The stretch of the limits now: 1 on an idle node, at most `cap`."""
        return min(self.cap, max(1.0, self._load, self._slowdown))
