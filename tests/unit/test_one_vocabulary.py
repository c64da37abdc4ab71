"""One message pair per concept (issue 17): the check, the usage query, the deadline error.

The ``verifier`` role answers the patterns' `Verify`, so it serves verify-and-retry; the
usage query is `UsageQuery` / `UsageSummary`; 0.1's names stay for one release, deprecated.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator

import msgpack
import pytest

import actors
from actors import Verifier
from protocols import InMemoryMessenger, Message, UsageQuery, UsageSummary, encode_message
from protocols.patterns import Reply, Request, Verdict, Verify, verify_and_retry


@pytest.fixture
async def verifier() -> AsyncIterator[Verifier]:
    """A `Verifier` on the offline model that refuses the first two drafts, no Ray needed."""
    agent = Verifier(forbidden=[r"\bdraft [12]\b"])
    await agent.on_start()
    yield agent
    await agent.on_stop()


async def test_verify_and_retry_takes_the_verifier_role_as_its_verifier(
    verifier: Verifier,
) -> None:
    drafts = iter(["draft 1", "draft 2", "draft 3"])
    seen: list[Request] = []

    async def writer(msg: Message, _: InMemoryMessenger) -> Reply:
        assert isinstance(msg, Request)
        seen.append(msg)
        return Reply(text=next(drafts))

    async def checker(msg: Message, _: InMemoryMessenger) -> Verdict:
        assert isinstance(msg, Verify)  # the pattern's own message, as on the mesh
        return await verifier.check(msg)

    net = InMemoryMessenger()
    net.register("writer", writer)
    net.register("checker", checker, role="verifier")
    result = await verify_and_retry(net, "writer", "checker", Request(text="write it"))
    assert result.answer.text == "draft 3"
    assert [a.passed for a in result.attempts] == [False, False, True]
    assert "forbidden pattern" in result.attempts[0].feedback
    # The verifier's reasons went back to the writer with the next request.
    assert seen[2].feedback == [a.feedback for a in result.attempts[:2]]


async def test_a_check_with_no_rules_is_judged_by_the_default_rules() -> None:
    plain = Verifier()
    await plain.on_start()
    try:
        verdict = await plain.check(Verify(task="say hi", answer="hi"))
    finally:
        await plain.on_stop()
    assert verdict.model == "offline:default"  # the model judged it
    assert verdict.reasons
    assert verdict.feedback == "; ".join(verdict.reasons)


def test_there_is_one_verify_and_verdict_and_old_field_names_still_read() -> None:
    assert actors.Verify is Verify
    assert actors.Verdict is Verdict
    old = Verify(output="The answer is 42.", ground_truth="42")  # 0.1's actors.Verify field
    assert old.answer == "The answer is 42."
    with pytest.warns(DeprecationWarning, match=r"Verify\.answer"):
        assert old.output == old.answer
    payload = msgpack.unpackb(encode_message(old))
    assert payload["answer"] == old.answer  # the wire has one name for it
    assert Verify.model_validate(payload) == old


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("actors", "GetUsage", UsageQuery),
        ("actors", "UsageReport", UsageSummary),
        ("actors.messages", "GetUsage", UsageQuery),
        ("actors.messages", "UsageReport", UsageSummary),
    ],
)
def test_the_old_usage_names_are_deprecated_aliases(
    module: str, old: str, new: type[Message]
) -> None:
    with pytest.warns(DeprecationWarning, match=new.__name__):
        assert getattr(importlib.import_module(module), old) is new


def test_a_usage_summary_carries_the_budget_left() -> None:
    summary = UsageSummary(agent="a", budget_remaining={"tokens": 10.0, "usd": None})
    again = UsageSummary.model_validate(msgpack.unpackb(encode_message(summary)))
    assert again.budget_remaining == {"tokens": 10.0, "usd": None}
