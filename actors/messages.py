"""The messages LLM agents understand and answer, tagged ``llm.*``.

They live in the installed package so that every Ray worker can import them. Two
exchanges use the runtime's and the patterns' messages instead, one pair per concept:
usage is `UsageQuery` / `UsageSummary` (``protocols``), what `Mesh.usage` asks every
agent; a check is `Verify` / `Verdict` (``protocols.patterns``), what the
verify-and-retry and race patterns send, so the ``verifier`` role serves them.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, Field

from protocols import Message, UsageQuery, UsageSummary
from protocols.patterns import Verdict, Verify

__all__ = [
    "CallUsage",
    "Completion",
    "Prompt",
    "Remember",
    "Remembered",
    "Verdict",
    "Verify",
]

#: raymesh 0.1's names -> (the one they became, what changed).
_DEPRECATED: dict[str, tuple[type[Message], str]] = {
    "GetUsage": (UsageQuery, "ask UsageQuery() (from protocols) instead"),
    "UsageReport": (
        UsageSummary,
        "expect UsageSummary (from protocols) instead: .ledger.total, .ledger.by_model and "
        ".ledger.by_trace are .total, .by_model and .by_trace; .budget_remaining is unchanged",
    ),
}


class CallUsage(BaseModel):
    """What answering one message used."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    #: True when some of the tokens were estimated (the provider reported none).
    estimated: bool = False


class Prompt(Message, type="llm.prompt/1"):
    """Ask an LLM agent for an answer."""

    text: str
    #: Extra material to answer from (documents, earlier results), placed before the text.
    context: list[str] = Field(default_factory=list)
    #: Cap on the reply's tokens (the agent's default when None).
    max_tokens: int | None = None


class Completion(Message, type="llm.completion/1"):
    """An LLM agent's answer."""

    text: str
    #: ``provider:MODEL`` that answered (after any fallback).
    model: str
    usage: CallUsage = Field(default_factory=CallUsage)
    #: Names of the tools called on the way, in order.
    tools_called: list[str] = Field(default_factory=list)
    #: Why an orchestrator answered without a plan (its model's plan did not fit the
    #: schema, even repaired); None when it planned, or is no orchestrator.
    planning_failed: str | None = None


class Remember(Message, type="llm.remember/1"):
    """Add documents to a retriever's long-term store."""

    texts: list[str]


class Remembered(Message, type="llm.remembered/1"):
    """How many documents the store holds now."""

    count: int


def __getattr__(name: str) -> Any:
    return deprecated(name, stacklevel=3)


def deprecated(name: str, *, stacklevel: int) -> Any:
    """Return a deprecated name of this module, with a DeprecationWarning at `stacklevel`.

    Raises:
        AttributeError: `name` is no deprecated name of this module.
    """
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    target, how = _DEPRECATED[name]
    warnings.warn(
        f"actors.{name} is {target.__name__} since raymesh 0.2 (one usage query): {how}; "
        "the old name goes in 0.3",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return target
