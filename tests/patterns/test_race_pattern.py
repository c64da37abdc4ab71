"""race: the first valid answer wins and the losers are cancelled."""

from __future__ import annotations

import asyncio

import pytest
from pattern_helpers import answering, failing, stalling

from protocols.message import Message
from protocols.messenger import InMemoryMessenger
from protocols.patterns import NoValidAnswerError, Request, Verdict, Verify, race


async def test_the_first_valid_answer_wins_and_the_losers_see_cancelled_error() -> None:
    net = InMemoryMessenger()
    cancelled: list[str] = []
    net.register("fast", answering(lambda r: "42"))
    net.register("slow-1", stalling(seen=cancelled))
    net.register("slow-2", stalling(seen=cancelled))
    result = await race(net, ["slow-1", "fast", "slow-2"], Request(text="q"), timeout=1.0)
    assert (result.winner, result.answer.text) == ("fast", "42")
    assert result.cancelled == ["slow-1", "slow-2"]
    assert sorted(cancelled) == ["slow-1", "slow-2"]


async def test_an_invalid_fast_answer_loses_to_a_valid_slower_one() -> None:
    net = InMemoryMessenger()
    release = asyncio.Event()

    async def careful(msg: Message, _: InMemoryMessenger) -> Message | None:
        await release.wait()
        return await answering(lambda r: "good")(msg, _)

    async def sloppy(msg: Message, _: InMemoryMessenger) -> Message | None:
        # Answer, then let the careful racer finish: its answer comes second.
        asyncio.get_running_loop().call_soon(release.set)
        return await answering(lambda r: "bad")(msg, _)

    net.register("sloppy", sloppy)
    net.register("careful", careful)
    result = await race(
        net, ["sloppy", "careful"], Request(text="q"), valid=lambda r: r.text == "good"
    )
    assert result.winner == "careful"
    assert "validity" in result.failures["sloppy"]


async def test_a_verifier_agent_decides_validity() -> None:
    net = InMemoryMessenger()

    async def verifier(msg: Message, _: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Verify)
        return Verdict(passed=msg.answer == "yes", feedback="must say yes")

    net.register("a", answering(lambda r: "no"))
    net.register("b", answering(lambda r: "yes"))
    net.register("checker", verifier)
    result = await race(net, ["a", "b"], Request(text="q"), verifier="checker", timeout=1.0)
    assert result.winner == "b"


async def test_all_racers_invalid_raises_no_valid_answer_error_with_every_reason() -> None:
    net = InMemoryMessenger()
    net.register("a", answering(lambda r: "wrong"))
    net.register("b", failing("crashed"))
    with pytest.raises(NoValidAnswerError) as info:
        await race(net, ["a", "b"], Request(text="q"), valid=lambda r: False, timeout=1.0)
    assert set(info.value.failures) == {"a", "b"}
    assert "crashed" in info.value.failures["b"]
