"""The fuzz scenario's latency figure: a tail resting on enough asks, judged against a
bystander in the same flood (no Ray)."""

from __future__ import annotations

import pytest

from benchmarks.chaos import FuzzFigures
from benchmarks.chaos.fuzz import MIN_BEYOND, Phases, tail_share


@pytest.mark.parametrize(
    ("counts", "share"),
    [
        ((1_000, 3_300), 0.99),  # the full form: the p99, 10 asks beyond it
        ((200, 146), 0.93),  # the CI form's flood of about a second
        ((200, 100), 0.90),
        ((50, 60), 0.80),
        ((15, 100), 0.5),  # too few for any tail: the median
    ],
)
def test_the_tail_is_the_highest_percentile_with_enough_asks_beyond_it(
    counts: tuple[int, int], share: float
) -> None:
    assert tail_share(*counts) == share
    if share > 0.5:
        assert all((1 - share) * n >= MIN_BEYOND - 1e-9 for n in counts)


def test_the_figure_judges_the_agent_against_a_bystander_in_the_same_flood() -> None:
    # The machine slowed the bystander 2.5x under the flood; the fuzzed agent's tail rose
    # 2.85x, of which the flood's own cost to it is 19 / 16.7 = 1.14x.
    figures = FuzzFigures(frames=20_000, seed=1, tail=0.98, baseline_asks=600, fuzzed_asks=700,
                          agent=Phases(2.0, 6.67, 2.5, 19.0),
                          bystander=Phases(2.0, 6.67, 2.2, 16.7))  # fmt: skip
    lines = {f.figure: f for f in figures.lines()}
    (judged,) = [f for name, f in lines.items() if name.startswith("what the flood costs")]
    assert "p98 during the flood over the bystander's" in judged.figure
    assert (judged.value, judged.met) == ("1.14x", True)
    assert lines["the fuzzed agent's p98 during the flood over before"].value == "2.85x"
    assert (
        lines["the machine's slowdown: the bystander's p98 during the flood over before"].value
        == "2.50x"
    )


def test_an_agent_slowed_beyond_the_machine_misses_the_target() -> None:
    figures = FuzzFigures(frames=20_000, seed=1, tail=0.98, agent=Phases(2.0, 3.0, 3.0, 13.0),
                          bystander=Phases(2.0, 3.0, 2.0, 6.0))  # fmt: skip
    (judged,) = [f for f in figures.lines() if f.figure.startswith("what the flood costs")]
    assert (judged.value, judged.met) == ("2.17x", False)
