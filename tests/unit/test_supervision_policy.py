"""The supervision policy against a small model of OTP semantics, under random exits."""

from __future__ import annotations

from typing import get_args

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mesh.control._policy import Policy, RestartType, Strategy

NAMES = ["a", "b", "c", "d"]


class OtpModel:
    """OTP's rules written plainly: who runs, who is a child, when the supervisor quits."""

    def __init__(self, strategy: Strategy, kinds: dict[str, RestartType], max_r: int, max_t: float):
        self.strategy = strategy
        self.kinds = dict(kinds)
        self.order = list(kinds)
        self.running = set(kinds)
        self.max_r, self.max_t = max_r, max_t
        self.restart_times: list[float] = []
        self.failed = False
        self.generation = dict.fromkeys(kinds, 0)  # bumped on each (re)start

    def exit(self, name: str, *, abnormal: bool, now: float) -> None:
        self.running.discard(name)
        kind = self.kinds[name]
        if kind == "temporary":
            del self.kinds[name]
            self.order.remove(name)
            return
        if kind == "transient" and not abnormal:
            return
        self.restart_times = [t for t in self.restart_times if t >= now - self.max_t] + [now]
        if len(self.restart_times) > self.max_r:
            self.failed = True
            self.running.clear()
            return
        if self.strategy == "one_for_one":
            group = [name]
        elif self.strategy == "one_for_all":
            group = list(self.order)
        else:
            group = self.order[self.order.index(name) :]
        for sibling in group:
            if sibling == name:
                continue
            if sibling in self.running:
                self.running.discard(sibling)
                if self.kinds[sibling] == "temporary":
                    del self.kinds[sibling]
                    self.order.remove(sibling)
                else:
                    self.running.add(sibling)
                    self.generation[sibling] += 1
        self.running.add(name)
        self.generation[name] += 1


class PolicyMachine(RuleBasedStateMachine):
    """Random exits (kills and normal stops) at random times; policy and model must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    @initialize(
        strategy=st.sampled_from(get_args(Strategy)),
        kinds=st.lists(st.sampled_from(get_args(RestartType)), min_size=1, max_size=4),
        max_r=st.integers(0, 4),
        max_t=st.sampled_from([1.0, 5.0, 60.0]),
    )
    def start(self, strategy: Strategy, kinds: list[RestartType], max_r: int, max_t: float) -> None:
        children = dict(zip(NAMES, kinds, strict=False))
        self.policy = Policy(strategy, max_r, max_t, list(children.items()))
        self.model = OtpModel(strategy, children, max_r, max_t)
        self.generation = dict.fromkeys(children, 0)

    @precondition(lambda self: not self.model.failed and self.model.running)
    @rule(data=st.data(), abnormal=st.booleans(), wait=st.sampled_from([0.0, 0.3, 2.0, 30.0]))
    def child_exits(self, data: st.DataObject, abnormal: bool, wait: float) -> None:
        name = data.draw(st.sampled_from(sorted(self.model.running)))
        self.now += wait
        order = self.policy.order()
        plan = self.policy.exited(name, abnormal=abnormal, now=self.now)
        self.model.exit(name, abnormal=abnormal, now=self.now)
        assert plan.give_up == self.model.failed
        for started in plan.start:
            self.generation[started] += 1
        # Stops come in reverse start order; the exited child is never stopped again.
        positions = [order.index(n) for n in plan.stop]
        assert positions == sorted(positions, reverse=True)
        assert name not in plan.stop

    @rule(name=st.sampled_from(NAMES))
    def an_exit_of_a_child_not_running_changes_nothing(self, name: str) -> None:
        if name in self.policy.running:
            return
        plan = self.policy.exited(name, abnormal=True, now=self.now)
        assert plan.stop == ()
        assert plan.start == ()
        assert not plan.give_up

    @invariant()
    def the_same_children_run(self) -> None:
        if hasattr(self, "model"):
            assert self.policy.running == self.model.running
            assert self.policy.order() == self.model.order

    @invariant()
    def the_same_children_were_restarted(self) -> None:
        if hasattr(self, "model"):
            live = {n: g for n, g in self.generation.items() if n in self.model.kinds}
            assert live == {n: self.model.generation[n] for n in live}


PolicyMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
test_policy_follows_otp_semantics = PolicyMachine.TestCase


def test_one_for_all_restarts_everyone_in_start_order() -> None:
    policy = Policy("one_for_all", 3, 5.0, [("a", "permanent"), ("b", "permanent"),
                                            ("c", "permanent")])  # fmt: skip
    plan = policy.exited("b", abnormal=True, now=0.0)
    assert plan.stop == ("c", "a")
    assert plan.start == ("a", "b", "c")


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    policy = Policy("rest_for_one", 3, 5.0, [("a", "permanent"), ("b", "permanent"),
                                             ("c", "permanent")])  # fmt: skip
    plan = policy.exited("b", abnormal=True, now=0.0)
    assert plan.stop == ("c",)
    assert plan.start == ("b", "c")


def test_intensity_counts_restarts_within_the_window_only() -> None:
    policy = Policy("one_for_one", 1, 5.0, [("a", "permanent")])
    assert not policy.exited("a", abnormal=True, now=0.0).give_up
    assert not policy.exited("a", abnormal=True, now=6.0).give_up  # the first has aged out
    assert policy.exited("a", abnormal=True, now=7.0).give_up
