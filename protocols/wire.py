"""Messages the runtime itself sends."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from protocols.errors import MeshError
from protocols.message import Message

__all__ = [
    "ErrorReply",
    "NoReply",
    "Result",
    "Task",
    "Usage",
    "UsageQuery",
    "UsageSummary",
]


class ErrorReply(Message, type="raymesh.error/1"):
    """The payload of an error envelope: a `MeshError` as data."""

    code: str
    message: str
    agent: str | None = None
    trace_id: str | None = None
    hint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, error: MeshError) -> ErrorReply:
        """Return the wire form of `error`."""
        data = error.to_wire()
        core = {key: data.pop(key) for key in ("code", "message", "agent", "trace_id", "hint")}
        return cls(**core, details=data)

    def to_error(self) -> MeshError:
        """Return the typed error this reply carries."""
        return MeshError.from_wire(
            {**self.details, "code": self.code, "message": self.message,
             "agent": self.agent, "trace_id": self.trace_id, "hint": self.hint}
        )  # fmt: skip


class NoReply(Message, type="raymesh.noreply/1"):
    """The reply to an ask whose handler returned None."""


class Task(Message, type="raymesh.task/1"):
    """A task given to a team's entry agent (by ``raymesh run`` and `TeamHandle` users)."""

    text: str


class Result(Message, type="raymesh.result/1"):
    """What a team's entry agent answers to a `Task`."""

    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """Model usage: calls, tokens and cost."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    #: Calls whose tokens were estimated because the provider reported none.
    estimated_calls: int = 0
    #: Calls answered from the response cache (no model call, no cost).
    cached_calls: int = 0
    #: What the cached calls would have cost, in US dollars.
    saved_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        """Add `other` into this total."""
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.estimated_calls += other.estimated_calls
        self.cached_calls += other.cached_calls
        self.saved_usd += other.saved_usd


class UsageQuery(Message, type="raymesh.usage_query/1"):
    """Ask an agent what its models used; agents without models do not handle it.

    Reply: `UsageSummary`. The one usage query: `Mesh.usage`, ``raymesh run`` and
    callers asking one agent all send it.
    """


class UsageSummary(Message, type="raymesh.usage_summary/1"):
    """One agent's model usage, in total, per model and per trace, and its budget left.

    `Mesh.usage` totals the summaries of many agents into a ``mesh.UsageReport``.
    """

    agent: str
    total: Usage = Field(default_factory=Usage)
    by_model: dict[str, Usage] = Field(default_factory=dict)
    by_trace: dict[str, Usage] = Field(default_factory=dict)
    #: What is left of the agent's budget, ``{"tokens": ..., "usd": ...}`` (None values
    #: mean unlimited); empty when it has no budget.
    budget_remaining: dict[str, float | None] = Field(default_factory=dict)
