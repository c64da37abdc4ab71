"""The errors of LLM-backed agents, as one branch of raymesh's `MeshError` tree.

They travel between agents like every `MeshError` (``to_wire`` / ``from_wire``), so an
asker gets the same typed error the model-calling agent raised. A bad model string or a
missing API key is the runtime's ``ConfigError``, and a model call that runs out of time
its ``DeadlineExceededError``. The whole tree, generated from the classes, is the
documentation's Errors reference page (``reference/errors.md``, drawn by
``docs/_gen/errors.py``).

`ModelUnavailableError` is what a router falls back on; a `ProviderError` that is not
retryable (a bad request, a wrong key) is a bug to fix, not a reason to switch models.
"""

from __future__ import annotations

from typing import ClassVar

from mesh import MeshError

__all__ = [
    "BudgetExceededError",
    "McpServerError",
    "ModelError",
    "ModelUnavailableError",
    "ProviderError",
    "RateLimitedError",
    "RemoteAgentError",
    "StructuredOutputError",
    "ToolError",
]


class ModelError(MeshError):
    """A call to a language model failed.

    Attributes:
        model: The model string (``provider:MODEL``) the call went to, if known.
    """

    details: ClassVar[tuple[str, ...]] = ("model",)

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.model = model


class ProviderError(ModelError):
    """The provider refused or failed one request.

    Attributes:
        status: The HTTP status, or None for a connection error or timeout.
        retryable: Whether the same request may succeed later (429, 5xx, connection).
        retry_after: Seconds the provider asked us to wait, if it said.
    """

    details: ClassVar[tuple[str, ...]] = ("model", "status", "retryable", "retry_after")

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, model=model, agent=agent, trace_id=trace_id, hint=hint)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class ModelUnavailableError(ModelError):
    """The model cannot be used now: its circuit breaker is open or retries ran out.

    Attributes:
        retry_in: Seconds until the breaker lets a probe call through, if known.
    """

    details: ClassVar[tuple[str, ...]] = ("model", "retry_in")

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        retry_in: float | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, model=model, agent=agent, trace_id=trace_id, hint=hint)
        self.retry_in = retry_in


class StructuredOutputError(ModelError, ValueError):
    """The model's reply did not validate against the requested schema, even after a repair.

    Attributes:
        raw: The last reply, as text (truncated).
        errors: The validation errors of the last reply, as text.
    """

    details: ClassVar[tuple[str, ...]] = ("model", "raw", "errors")

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        raw: str = "",
        errors: str = "",
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, model=model, agent=agent, trace_id=trace_id, hint=hint)
        self.raw = raw
        self.errors = errors


class BudgetExceededError(ModelError):
    """A call would spend more tokens or dollars than its budget has left; it was not made.

    Attributes:
        needed: What the call needed (``{"tokens": ..., "usd": ...}``, estimated).
        remaining: What the budget had left (same keys; None means unlimited).
    """

    details: ClassVar[tuple[str, ...]] = ("model", "needed", "remaining")
    conversation_wide: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        needed: dict[str, float] | None = None,
        remaining: dict[str, float | None] | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, model=model, agent=agent, trace_id=trace_id, hint=hint)
        self.needed = dict(needed or {})
        self.remaining = dict(remaining or {})


class ToolError(ModelError):
    """A tool call asked for by the model was refused (unknown tool, bad arguments) or failed.

    Attributes:
        tool: The tool's name as the model gave it.
    """

    details: ClassVar[tuple[str, ...]] = ("model", "tool")

    def __init__(
        self,
        message: str,
        *,
        tool: str = "",
        model: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, model=model, agent=agent, trace_id=trace_id, hint=hint)
        self.tool = tool


class McpServerError(MeshError):
    """An MCP server an agent takes tools from could not start, died, or gave up restarting.

    Attributes:
        server: The server's name in the agent's ``mcp`` block.
    """

    details: ClassVar[tuple[str, ...]] = ("server",)

    def __init__(
        self,
        message: str,
        *,
        server: str = "",
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.server = server


class RemoteAgentError(MeshError):
    """A remote A2A agent could not be reached, refused the task, or failed it.

    Attributes:
        url: The remote agent's base URL.
        state: The A2A task state it ended in (``failed``, ``rejected``...), if it had one.
    """

    details: ClassVar[tuple[str, ...]] = ("url", "state")

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        state: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, agent=agent, trace_id=trace_id, hint=hint)
        self.url = url
        self.state = state


class RateLimitedError(ModelUnavailableError):
    """The API key's rate limit could not give the call capacity before its deadline.

    Raised at once, when the limiter sees the wait would pass the deadline, never after
    sleeping to it; a router falls back on it like on any unavailable model. The key
    itself is never named: `key` is its fingerprint.

    Attributes:
        key: The fingerprint of (provider, API key, endpoint, model) the limit belongs to.
    """

    details: ClassVar[tuple[str, ...]] = ("model", "key", "retry_in")

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        key: str = "",
        retry_in: float | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message, model=model, retry_in=retry_in, agent=agent, trace_id=trace_id, hint=hint
        )
        self.key = key
