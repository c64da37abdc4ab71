"""The supervisor's measure of a starved node: how far it stretches the limits of "hung"."""

from __future__ import annotations

import pytest

from mesh.control._policy import Starvation


def test_an_idle_node_stretches_nothing() -> None:
    starvation = Starvation(period_s=0.25)
    starvation.tick(late_s=0.01, now=1.0, load_per_cpu=0.3)
    assert starvation.factor < 1.1  # jitter, not starvation


def test_the_run_queue_per_cpu_stretches_the_limits_up_to_the_cap() -> None:
    starvation = Starvation(period_s=0.25, cap=20.0)
    starvation.tick(late_s=0.0, now=1.0, load_per_cpu=6.0)
    assert starvation.factor == 6.0
    starvation.tick(late_s=0.0, now=1.25, load_per_cpu=100.0)
    assert starvation.factor == 20.0  # a blocked loop is still replaced, later


def test_late_ticks_count_and_fade() -> None:
    starvation = Starvation(period_s=0.25, memory_s=10.0)
    starvation.tick(late_s=2.25, now=10.0, load_per_cpu=0.0)  # 10x its period late
    assert starvation.factor == pytest.approx(10.0)
    starvation.tick(late_s=0.0, now=20.0, load_per_cpu=0.0)  # one time constant on
    assert starvation.factor == pytest.approx(1.0 + 9.0 / 2.718281828, rel=1e-3)
    starvation.tick(late_s=0.0, now=120.0, load_per_cpu=0.0)
    assert starvation.factor == pytest.approx(1.0, abs=1e-3)
