"""OpenAI's chat shapes, and how they map to and from an entry agent's messages.

A chat request becomes the message the entry agent takes: an LLM agent's prompt
(``llm.prompt/1``: the last user turn as the text, the turns before it as context) or a
team's `Task` (the conversation as text). Its reply (an ``llm.completion/1`` or a `Result`)
becomes a ``chat.completion``, or, streamed, ``chat.completion.chunk`` events. The mesh
knows the prompt class only through the agent class's handlers, so it never imports the
agents package.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mesh.agent import Agent
from mesh.errors import ConfigError
from mesh.gateway._errors import BadRequestError, error_body
from mesh.security import redact
from protocols import Message, Task

__all__ = [
    "PROMPT_TAG",
    "ChatRequest",
    "EntryPoint",
    "Piece",
    "chat_chunks",
    "completion_body",
    "entry_point",
    "error_events",
    "usage_of",
]

#: The tag of an LLM agent's prompt (``actors.Prompt``); its reply is ``llm.completion/1``.
PROMPT_TAG = "llm.prompt/1"


class ChatMessage(BaseModel):
    """One turn of a chat; content parts other than text are refused."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The turn's text, its text parts joined."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRequestError(
                    f"a {self.role} message has a content part of type {part.get('type')!r}",
                    hint="only text parts are served",
                )
            parts.append(part["text"])
        return "".join(parts)


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``; sampling settings are accepted and unused."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage


@dataclass(frozen=True)
class EntryPoint:
    """An agent served as a model: its name and the class of the message it is asked with."""

    agent: str
    request: type[Message]

    def message(self, chat: ChatRequest) -> Message:
        """Return the message that asks this agent the chat's last user turn."""
        turns = [(m.role, m.text()) for m in chat.messages]
        last = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
        if last is None:
            raise BadRequestError("the chat has no user message", hint="add a user turn")
        earlier = [f"{role}: {text}" for role, text in turns[:last] if text]
        fields = self.request.model_fields
        if "context" not in fields:  # a Task: the whole conversation as text
            return self.request(text="\n".join([*earlier, turns[last][1]]))
        limit = chat.max_completion_tokens or chat.max_tokens
        extra = {"max_tokens": limit} if "max_tokens" in fields else {}
        return self.request(text=turns[last][1], context=earlier, **extra)


def entry_point(name: str, agent_cls: type[Agent]) -> EntryPoint:
    """Return how to ask agent `name` of class `agent_cls` a chat.

    Raises:
        ConfigError: The agent takes neither an LLM prompt nor a `Task`.
    """
    routes = agent_cls.handlers
    if PROMPT_TAG in routes:
        return EntryPoint(name, routes[PROMPT_TAG].message)
    if Task.type_tag in routes:
        return EntryPoint(name, Task)
    raise ConfigError(
        f"entry agent {name!r} ({agent_cls.__qualname__}) takes neither {PROMPT_TAG} "
        f"nor {Task.type_tag}, so it cannot be served as a model",
        hint="give it a handler for raymesh.Task, or make another agent the team's entry",
    )


def usage_of(reply: Message | None) -> dict[str, int]:
    """Return OpenAI's usage of a reply: a completion's own, a `Result`'s ``data.usage``."""
    found: Any = getattr(reply, "usage", None)
    if found is None:
        found = (getattr(reply, "data", None) or {}).get("usage")
    if isinstance(found, BaseModel):
        found = found.model_dump()
    found = found if isinstance(found, dict) else {}
    prompt, completion = int(found.get("input_tokens", 0)), int(found.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def completion_body(reply: Message | None, *, model: str, trace_id: str) -> dict[str, Any]:
    """Return the ``chat.completion`` of an entry agent's reply (None: an empty answer)."""
    return {
        "id": f"chatcmpl-{trace_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": _text(reply)}}],
        "usage": usage_of(reply),
        "raymesh": {"trace_id": trace_id, "type": None if reply is None else reply.type_tag},
    }  # fmt: skip


def _text(reply: Message | None) -> str:
    text = getattr(reply, "text", "")
    return text if isinstance(text, str) else ""


class Piece(Protocol):
    """What the stream gives: a piece of text and the agent that emitted it (a `Chunk`)."""

    @property
    def text(self) -> str: ...
    @property
    def agent(self) -> str: ...


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


_DONE = "data: [DONE]\n\n"


def error_events(error: BaseException) -> list[str]:
    """The events that end a stream on `error`: its OpenAI error JSON, then ``[DONE]``."""
    return [_event(error_body(error)), _DONE]


async def chat_chunks(
    pieces: AsyncIterable[Piece],
    *,
    model: str,
    agent: str,
    trace_id: str,
    reply: Callable[[], Message | None],
    include_usage: bool = False,
) -> AsyncIterator[str]:
    """Yield a streamed answer as server-sent events in OpenAI's chunk format.

    The asked `agent`'s text is the answer's content; a piece from an agent below it
    goes out with an empty delta and a ``raymesh`` field naming the agent, so a chat UI
    shows only the answer and a client that knows raymesh sees the team at work. Once
    `pieces` ends, `reply()` is the final reply: its text is sent if the agent streamed
    none, then a chunk with ``finish_reason``, usage (when asked for) and ``[DONE]``.
    An error while streaming ends the stream with an ``{"error": ...}`` event (the
    OpenAI SDK raises it as an ``APIError``).
    """
    base = {"id": f"chatcmpl-{trace_id}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""}, raymesh={"trace_id": trace_id})
    streamed = False
    try:
        async for piece in pieces:
            if not piece.text:
                continue
            text = redact(piece.text)
            if piece.agent == agent:
                streamed = True
                yield chunk({"content": text}, raymesh={"agent": piece.agent})
            else:
                yield chunk({}, raymesh={"agent": piece.agent, "text": text})
        final = reply()
    except Exception as exc:  # every error ends the stream as an event, typed
        for event in error_events(exc):
            yield event
        return
    if not streamed and _text(final):
        yield chunk({"content": _text(final)}, raymesh={"agent": agent})
    yield chunk({}, "stop")
    if include_usage:
        yield _event({**base, "choices": [], "usage": usage_of(final)})
    yield _DONE
