"""verify_and_retry: feedback flows back to the generator until an answer passes."""

from __future__ import annotations

import pytest

from protocols.message import Message
from protocols.messenger import Handler, InMemoryMessenger
from protocols.patterns import (
    Reply,
    Request,
    Verdict,
    VerificationFailedError,
    Verify,
    verify_and_retry,
)


def generator(seen_feedback: list[list[str]]) -> Handler:
    async def handle(msg: Message, _: InMemoryMessenger) -> Message | None:
        assert isinstance(msg, Request)
        seen_feedback.append(list(msg.feedback))
        return Reply(text=f"v{len(seen_feedback)}")

    return handle


async def strict_verifier(msg: Message, _: InMemoryMessenger) -> Message | None:
    assert isinstance(msg, Verify)
    ok = msg.answer == "v3"
    return Verdict(passed=ok, feedback="" if ok else f"{msg.answer} is not v3")


def network(seen: list[list[str]]) -> InMemoryMessenger:
    net = InMemoryMessenger()
    net.register("gen", generator(seen))
    net.register("check", strict_verifier)
    return net


async def test_feedback_from_failed_attempts_reaches_the_generator_until_one_passes() -> None:
    seen: list[list[str]] = []
    result = await verify_and_retry(
        network(seen), "gen", "check", Request(text="task"), max_attempts=5, timeout=1.0
    )
    assert result.answer.text == "v3"
    assert [a.passed for a in result.attempts] == [False, False, True]
    assert seen == [[], ["v1 is not v3"], ["v1 is not v3", "v2 is not v3"]]


async def test_never_passing_raises_verification_failed_error_carrying_the_attempts() -> None:
    seen: list[list[str]] = []
    with pytest.raises(VerificationFailedError) as info:
        await verify_and_retry(network(seen), "gen", "check", Request(text="t"), max_attempts=2)
    assert [a["feedback"] for a in info.value.attempts] == ["v1 is not v3", "v2 is not v3"]
    assert len(seen) == 2
