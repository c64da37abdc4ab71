"""The exactly_once and overload figures: which lines miss their targets, and when (no Ray)."""

from __future__ import annotations

from benchmarks.chaos import ExactlyOnceFigures, OverloadFigures
from benchmarks.chaos.overload import ALLOWANCE_BYTES, HELD_SEND_BYTES


def _missed(figures: ExactlyOnceFigures | OverloadFigures) -> list[str]:
    return [line.figure for line in figures.lines() if line.met is False]


def test_an_acknowledged_effect_missing_from_the_state_is_a_lost_one_and_fails() -> None:
    clean = ExactlyOnceFigures(asks=10, agents=2, kill_every_s=1, replies=8, duplicates=1,
                               errors={"DeadlineExceededError": 1}, applied_once=10,
                               failed_but_applied=1)  # fmt: skip
    assert clean.acknowledged == 9
    assert _missed(clean) == []
    assert "1 of 1" in {line.value for line in clean.lines()}  # failed, yet applied

    lost = ExactlyOnceFigures(asks=10, agents=2, kill_every_s=1, replies=10, lost=1)
    twice = ExactlyOnceFigures(asks=10, agents=2, kill_every_s=1, replies=10, applied_twice=1)
    assert _missed(lost) == ["effects lost (acknowledged, not in the durable state)"]
    assert _missed(twice) == ["effects applied twice"]


def _overload(**fields: object) -> OverloadFigures:
    base: dict[str, object] = {
        "policy": "wait", "seconds": 10, "consumer_per_s": 100, "offered": 10_000,
        "accepted": 1_000, "outbox_full": 8_000, "unsettled": 1_000, "held": 1_000,
        "frame_bytes": 1_000, "producer_rss_mb": [100.0, 120.0], "consumer_rss_mb": [100.0],
        "answered_s": 0.5,
    }  # fmt: skip
    return OverloadFigures(**{**base, **fields})  # type: ignore[arg-type]


def test_the_overload_bound_is_the_held_messages_in_bytes_plus_the_allowance() -> None:
    figures = _overload()
    expected = (1_000 * (1_000 + HELD_SEND_BYTES) + ALLOWANCE_BYTES) / 1024 / 1024
    assert figures.bound_mb == expected
    assert figures.growth_mb == 20
    assert _missed(figures) == []


def test_overload_misses_on_growth_untyped_errors_no_backpressure_or_no_answer() -> None:
    assert _missed(_overload(producer_rss_mb=[100.0, 400.0])) == [
        "growth of both vs the bound (1,000 held x (1,000 B + 8 KiB) + 64 MB)"
    ]
    assert _missed(_overload(untyped=1)) == ["untyped errors"]
    assert _missed(_overload(errors={"PeerDeadError": 2})) == ["other errors"]
    assert _missed(_overload(outbox_full=0)) == ["overflow refused as typed backpressure"]
    assert _missed(_overload(answered_s=None)) == ["both answer an ask afterwards (no deadlock)"]
