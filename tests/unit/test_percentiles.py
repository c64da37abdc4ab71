"""The one percentile of the benchmarks and the chaos suite: linear interpolation."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.percentiles import percentile


def test_it_interpolates_linearly_between_the_two_nearest_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]  # sorted: 10 20 30 40, at positions 0..3
    assert percentile(values, 0.0) == 10.0
    assert percentile(values, 0.5) == 25.0  # position 1.5: halfway between 20 and 30
    assert percentile(values, 0.99) == pytest.approx(39.7)  # position 2.97
    assert percentile(values, 1.0) == 40.0


def test_it_is_not_nearest_rank() -> None:
    # Nearest rank would give 99.0 (the value of rank ceil(0.99 * 100) = 99).
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == pytest.approx(99.01)


def test_one_value_is_every_percentile_of_itself_and_none_has_none() -> None:
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


@pytest.mark.parametrize("share", [-0.01, 1.01])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        percentile([1.0], share)


@given(st.lists(st.floats(min_value=0, max_value=1e4), min_size=2, max_size=200))
def test_it_agrees_with_the_definition_the_committed_figures_used(values: list[float]) -> None:
    # docs/bench/*.json were computed with statistics.quantiles(method="inclusive").
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for share, cut in ((0.5, cuts[49]), (0.95, cuts[94]), (0.99, cuts[98])):
        assert percentile(values, share) == pytest.approx(cut, rel=1e-9, abs=1e-9)
    assert percentile(values, 0.5) == pytest.approx(statistics.median(values), abs=1e-9)
