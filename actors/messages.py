"""The messages LLM agents understand and answer, tagged ``llm.*``.

They live in the installed package so that every Ray worker can import them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from actors.usage import UsageLedger
from protocols import Message

__all__ = [
    "CallUsage",
    "Completion",
    "GetUsage",
    "Prompt",
    "Remember",
    "Remembered",
    "UsageReport",
    "Verdict",
    "Verify",
]


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


class GetUsage(Message, type="llm.get_usage/1"):
    """Ask an LLM agent for its usage ledger."""


class UsageReport(Message, type="llm.usage_report/1"):
    """An LLM agent's usage so far, and what is left of its budget."""

    agent: str
    ledger: UsageLedger
    #: ``{"tokens": ..., "usd": ...}``; None values mean unlimited; empty without a budget.
    budget_remaining: dict[str, float | None] = Field(default_factory=dict)


class Verify(Message, type="llm.verify/1"):
    """Ask a verifier to check an output."""

    output: str
    #: The task the output answers, for the judge's context.
    task: str = ""
    #: Rules in plain words, judged by the model.
    rules: list[str] = Field(default_factory=list)
    #: Text the output must contain (checked exactly, after normalising spaces and case).
    ground_truth: str | None = None
    #: Regular expressions the output must not match (checked exactly).
    forbidden: list[str] = Field(default_factory=list)


class Verdict(Message, type="llm.verdict/1"):
    """A verifier's judgement."""

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    model: str = ""


class Remember(Message, type="llm.remember/1"):
    """Add documents to a retriever's long-term store."""

    texts: list[str]


class Remembered(Message, type="llm.remembered/1"):
    """How many documents the store holds now."""

    count: int
