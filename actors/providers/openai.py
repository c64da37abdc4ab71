"""`openai:MODEL`: OpenAI's Chat Completions API through the official async SDK.

With a `base_url` the same provider talks to any OpenAI-compatible server (vLLM, Ollama,
llama.cpp, LiteLLM). The SDK's own retries are off (``max_retries=0``) and each request
gets the timeout its caller computed from the deadline: retries and deadlines live in
`actors.client`, once for every provider.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from actors.errors import ProviderError
from actors.providers._base import (
    ModelRequest,
    ModelResponse,
    TextSink,
    TokenUsage,
    ToolCall,
    rate_headers,
    streaming_to,
)
from actors.providers._errors import provider_error

__all__ = ["OpenAIProvider"]


class OpenAIProvider:
    """One OpenAI (or OpenAI-compatible) chat model."""

    provider = "openai"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None) -> None:
        """Build the SDK client; no request is made.

        Args:
            model: The model name, e.g. ``gpt-4o-mini``.
            api_key: The API key (any non-empty string for servers that need none).
            base_url: An OpenAI-compatible endpoint, e.g. ``http://localhost:8000/v1``.
        """
        self.model = model
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    async def send(self, request: ModelRequest, *, timeout: float) -> ModelResponse:
        """Make one Chat Completions request.

        Raises:
            ProviderError: The API or the network failed, or the reply is unusable.
        """
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(m) for m in request.messages],
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.structured is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.structured.name,
                    "schema": request.structured.json_schema,
                    # Strict mode rejects common pydantic schemas (defaults, optional
                    # fields); we validate the reply ourselves instead.
                    "strict": False,
                },
            }
        try:
            sink = streaming_to(request)
            if sink is not None:
                return await self._stream(kwargs, sink, timeout)
            # The raw response carries the rate-limit headers the limiter adjusts to.
            raw = await self._client.chat.completions.with_raw_response.create(
                **kwargs, timeout=timeout
            )
            response = _response(raw.parse(), structured=request.structured is not None)
            response.headers = rate_headers(raw.headers)
            return response
        except openai.OpenAIError as exc:
            raise provider_error(exc, model=f"openai:{self.model}", sdk=openai) from exc
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"openai:{self.model} returned a reply without the expected fields: {exc}",
                model=f"openai:{self.model}",
                hint="is base_url an OpenAI-compatible Chat Completions endpoint?",
            ) from exc

    async def _stream(
        self, kwargs: dict[str, Any], sink: TextSink, timeout: float
    ) -> ModelResponse:
        # Server-sent chunks; the last one (asked for) carries the usage.
        chunks = await self._client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}, timeout=timeout
        )
        text: list[str] = []
        usage: TokenUsage | None = None
        model, finish = "", None
        try:
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = TokenUsage(input_tokens=chunk.usage.prompt_tokens,
                                       output_tokens=chunk.usage.completion_tokens)  # fmt: skip
                if not chunk.choices:
                    continue
                finish = chunk.choices[0].finish_reason or finish
                piece = chunk.choices[0].delta.content
                if piece:
                    text.append(piece)
                    await sink(piece)
        finally:
            await chunks.close()
        # The stream's HTTP response carries the rate-limit headers, as a whole reply's does.
        return ModelResponse(text="".join(text), usage=usage, model=model, finish_reason=finish,
                             headers=rate_headers(chunks.response.headers))  # fmt: skip

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()


def _wire_message(message: Any) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.content,
        }
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    return wire


def _response(reply: Any, *, structured: bool) -> ModelResponse:
    choice = reply.choices[0]
    message = choice.message
    text = message.content or ""
    calls = [
        ToolCall(
            call_id=c.id,
            name=c.function.name,
            arguments=c.function.arguments
            if isinstance(c.function.arguments, str)
            else json.dumps(c.function.arguments),
        )
        for c in (message.tool_calls or [])
        if getattr(c, "function", None) is not None
    ]
    usage = reply.usage
    return ModelResponse(
        text=text,
        tool_calls=calls,
        structured=text if structured else None,
        usage=TokenUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
        if usage is not None
        else None,
        model=reply.model or "",
        finish_reason=choice.finish_reason,
    )
