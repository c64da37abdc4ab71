"""The provider-neutral shapes of a model call, and the two protocols around them.

A `Provider` makes exactly one request to one model and translates its wire format to
and from these shapes; it never retries, never sleeps, never keeps state beyond its SDK
client. Everything that makes a call dependable (deadline, retries, circuit breaker,
usage, budget, structured output, the tool loop) lives once, above it, in a
`ModelClient`, so the three providers cannot drift apart in behaviour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = [
    "ChatMessage",
    "ModelRequest",
    "ModelResponse",
    "Provider",
    "StructuredSpec",
    "TextSink",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
    "estimate_tokens",
    "pieces",
    "rate_headers",
    "streaming_to",
    "text_sink",
]

#: Given each piece of a streamed answer's text as it arrives; it may raise (a spent
#: budget) to stop the stream.
TextSink = Callable[[str], Awaitable[None]]

#: Where providers stream the text of the answer being made, when its asker reads a
#: stream (`LLMAgent` sets it); None: every request is answered in one piece.
text_sink: ContextVar[TextSink | None] = ContextVar("raymesh_text_sink", default=None)
_PIECE = re.compile(r"\s*\S+\s*|\s+")

Role = Literal["system", "user", "assistant", "tool"]


def estimate_tokens(text: str) -> int:
    """Return a rough token count for `text` (about four characters a token, at least 1).

    Used only where a provider reports nothing, and for budget checks before a call.
    """
    return max(1, (len(text) + 3) // 4)


def rate_headers(headers: Any) -> dict[str, str]:
    """Return the rate-limit headers of a response (``*ratelimit*``, ``retry-after``), lower-cased.

    Only these are kept on a `ModelResponse`: the limiter reads them; nothing else needs
    the rest.
    """
    return {
        k.lower(): str(v)
        for k, v in dict(headers or {}).items()
        if "ratelimit" in k.lower() or k.lower().startswith("retry-after")
    }


def streaming_to(request: ModelRequest) -> TextSink | None:
    """Return where to stream `request`'s answer, or None to answer in one piece.

    Only plain text answers stream: a reply with tool calls or structured output is
    of use only whole.
    """
    sink = text_sink.get()
    if sink is None or request.tools or request.structured is not None:
        return None
    return sink


def pieces(text: str) -> list[str]:
    """Return `text` cut into words, each with the spaces after it (what a model streams)."""
    return _PIECE.findall(text)


class ToolCall(BaseModel):
    """A call the model asked for: a tool name and its arguments (not yet validated)."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    name: str
    #: The arguments as the model wrote them: JSON text, unparsed and unvalidated.
    arguments: str


class ChatMessage(BaseModel):
    """One turn of a conversation, in a form every provider can translate."""

    role: Role
    content: str = ""
    #: On an assistant turn: the tool calls it made.
    tool_calls: list[ToolCall] = Field(default_factory=list)
    #: On a tool turn: which call this is the result of, and the tool's name.
    tool_call_id: str | None = None
    name: str | None = None
    #: On a tool turn: the call failed (the content says why).
    is_error: bool = False

    @classmethod
    def system(cls, text: str) -> ChatMessage:
        """Return a system turn."""
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str) -> ChatMessage:
        """Return a user turn."""
        return cls(role="user", content=text)

    @classmethod
    def assistant(cls, text: str, tool_calls: Sequence[ToolCall] = ()) -> ChatMessage:
        """Return an assistant turn, with the tool calls it made."""
        return cls(role="assistant", content=text, tool_calls=list(tool_calls))

    def size_hint(self) -> int:
        """Return the estimated tokens of this turn."""
        extra = sum(len(c.arguments) + len(c.name) for c in self.tool_calls)
        return estimate_tokens(self.content) + (extra + 3) // 4 + 4


class ToolSpec(BaseModel):
    """A tool as offered to the model: name, description and JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any]


class StructuredSpec(BaseModel):
    """A request for a reply that is a JSON object conforming to `json_schema`."""

    model_config = ConfigDict(frozen=True)

    name: str
    json_schema: dict[str, Any]


class ModelRequest(BaseModel):
    """One request to a model."""

    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    #: Ask the model to call one of `tools` if it can ("auto") or to answer in text.
    structured: StructuredSpec | None = None
    max_tokens: int = 1024
    temperature: float | None = None

    def size_hint(self) -> int:
        """Return the estimated input tokens of the request."""
        schemas = sum(len(json.dumps(t.parameters)) for t in self.tools)
        if self.structured is not None:
            schemas += len(json.dumps(self.structured.json_schema))
        return sum(m.size_hint() for m in self.messages) + (schemas + 3) // 4


class TokenUsage(BaseModel):
    """Tokens of one request; `estimated` is True when the provider reported none."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class ModelResponse(BaseModel):
    """What one request returned."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    #: For a structured request: the JSON text of the reply (may be malformed).
    structured: str | None = None
    #: As reported by the provider; None when it reported nothing.
    usage: TokenUsage | None = None
    #: The model name the provider reports having used (may be a dated snapshot).
    model: str = ""
    finish_reason: str | None = None
    #: Seconds the request took, retries included (set by the client).
    latency_s: float = 0.0
    #: The provider's rate-limit headers (see `rate_headers`), for the limiter.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Answered from the response cache: no request was made (set by the client).
    cached: bool = False


@runtime_checkable
class Provider(Protocol):
    """One model behind one SDK: makes a single request, no retries.

    Implementations raise `ProviderError` (with `retryable` and `retry_after` set) for
    any failure of the provider or the network, and nothing else, so the caller can
    decide about retries without knowing the SDK.
    """

    #: The provider's name: ``openai``, ``anthropic`` or ``offline``.
    provider: str
    #: The model name, without the provider prefix.
    model: str

    async def send(self, request: ModelRequest, *, timeout: float) -> ModelResponse:
        """Make one request and return its response within `timeout` seconds.

        Raises:
            ProviderError: The provider or the network failed.
        """
        ...

    async def aclose(self) -> None:
        """Release the SDK's connections."""
        ...
