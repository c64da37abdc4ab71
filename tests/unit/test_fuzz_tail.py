"""The fuzz scenario's latency figure compares a tail that rests on enough asks (no Ray)."""

from __future__ import annotations

import pytest

from benchmarks.chaos import FuzzFigures
from benchmarks.chaos.fuzz import MIN_BEYOND, tail_share


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


def test_the_figure_names_the_tail_it_judges() -> None:
    # Before: a p99 of some 100 asks (their maximum, one stall) was judged against 2x.
    figures = FuzzFigures(frames=3_000, seed=1, tail=0.9, baseline_asks=200, fuzzed_asks=100,
                          baseline_tail_ms=10.0, fuzzed_tail_ms=19.0)  # fmt: skip
    (line,) = [f for f in figures.lines() if "during the flood over" in f.figure]
    assert line.figure.startswith("p90 during the flood over p90 before")
    assert (line.value, line.met) == ("1.90x", True)
