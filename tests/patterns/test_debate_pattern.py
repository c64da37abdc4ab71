"""debate: proposals, critique rounds, early stop on consensus, a judge with a deadline."""

from __future__ import annotations

import asyncio

import pytest
from pattern_helpers import failing, stalling

from protocols.envelope import Kind
from protocols.message import Message
from protocols.messenger import Handler, InMemoryMessenger
from protocols.patterns import (
    Critique,
    Judge,
    JudgeTimeoutError,
    Position,
    Propose,
    Verdict,
    debate,
)


def debater(answers: list[str]) -> Handler:
    """Return a debater that says answers[0], then answers[n] after critique round n."""

    async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
        if isinstance(msg, Propose):
            return Position(answer=answers[0])
        assert isinstance(msg, Critique)
        return Position(answer=answers[min(msg.round, len(answers) - 1)])

    return handle


async def judge_picks_alice(msg: Message, _: InMemoryMessenger) -> Message | None:
    assert isinstance(msg, Judge)
    return Verdict(passed=True, winner="alice")


async def test_stubborn_debaters_run_every_round_and_the_judge_decides() -> None:
    net = InMemoryMessenger()
    net.register("alice", debater(["4"]))
    net.register("bob", debater(["5"]))
    net.register("judge", judge_picks_alice)
    result = await debate(net, ["alice", "bob"], "judge", "2+2?", rounds=2, timeout=1.0)
    assert (result.answer, result.winner, result.consensus) == ("4", "alice", False)
    assert result.critique_rounds == 2
    assert net.count(recipient="judge", kind=Kind.ASK) == 1


async def test_consensus_stops_the_debate_early_without_asking_the_judge() -> None:
    net = InMemoryMessenger()
    net.register("alice", debater(["4"]))
    net.register("bob", debater(["5", "4"]))
    net.register("judge", judge_picks_alice)
    result = await debate(net, ["alice", "bob"], "judge", "2+2?", rounds=5, timeout=1.0)
    assert result.consensus
    assert result.answer == "4"
    assert result.critique_rounds == 1
    assert net.count(recipient="judge") == 0


async def test_critiques_show_each_debater_only_the_others_positions() -> None:
    net = InMemoryMessenger()
    shown: dict[str, dict[str, str]] = {}

    def recording(name: str, answer: str) -> Handler:
        async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
            if isinstance(msg, Critique):
                shown[name] = msg.positions
            return Position(answer=answer)

        return handle

    for name, answer in [("a", "1"), ("b", "2"), ("c", "3")]:
        net.register(name, recording(name, answer))
    net.register("judge", judge_picks_alice)
    await debate(net, ["a", "b", "c"], "judge", "q", rounds=1)
    assert shown == {
        "a": {"b": "2", "c": "3"},
        "b": {"a": "1", "c": "3"},
        "c": {"a": "1", "b": "2"},
    }


async def test_a_judge_that_does_not_decide_in_time_raises_judge_timeout_error() -> None:
    net = InMemoryMessenger()
    judging = asyncio.Event()
    net.register("alice", debater(["4"]))
    net.register("bob", debater(["5"]))
    net.register("judge", stalling(judging))
    with pytest.raises(JudgeTimeoutError) as info:
        await debate(net, ["alice", "bob"], "judge", "2+2?", rounds=1, judge_timeout=0.02)
    assert judging.is_set()
    assert info.value.agent == "judge"
    assert isinstance(info.value, TimeoutError)


async def test_a_failing_debater_drops_out_and_the_debate_goes_on() -> None:
    net = InMemoryMessenger()
    net.register("alice", debater(["4"]))
    net.register("bob", failing("rate limited"))
    net.register("judge", judge_picks_alice)
    result = await debate(net, ["alice", "bob"], "judge", "2+2?", rounds=3)
    assert result.consensus  # alone, alice agrees with herself
    assert "rate limited" in result.failures["bob"]
