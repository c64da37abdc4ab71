"""`anthropic:MODEL`: Anthropic's Messages API through the official async SDK.

Structured output uses forced tool use (one tool whose input schema is the requested
schema, ``tool_choice`` naming it), the method Anthropic documents for JSON output. The
SDK's retries are off and each request gets its caller's timeout, as for OpenAI.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from actors.errors import ProviderError
from actors.providers._base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    TextSink,
    TokenUsage,
    ToolCall,
    rate_headers,
    streaming_to,
)
from actors.providers._errors import provider_error

__all__ = ["AnthropicProvider"]


class AnthropicProvider:
    """One Anthropic model."""

    provider = "anthropic"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None) -> None:
        """Build the SDK client; no request is made.

        Args:
            model: The model name, e.g. ``claude-sonnet-4-5``.
            api_key: The API key.
            base_url: Another endpoint speaking the Messages API (a proxy, a test server).
        """
        self.model = model
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)

    async def send(self, request: ModelRequest, *, timeout: float) -> ModelResponse:
        """Make one Messages request.

        Raises:
            ProviderError: The API or the network failed, or the reply is unusable.
        """
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": _wire_messages([m for m in request.messages if m.role != "system"]),
        }
        if system:
            kwargs["system"] = system
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        if request.structured is not None:
            tools.append(
                {
                    "name": request.structured.name,
                    "description": "Give the answer as this tool's input.",
                    "input_schema": request.structured.json_schema,
                }
            )
            kwargs["tool_choice"] = {"type": "tool", "name": request.structured.name}
        if tools:
            kwargs["tools"] = tools
        try:
            sink = streaming_to(request)
            if sink is not None:
                return await self._stream(kwargs, sink, timeout)
            # The raw response carries the rate-limit headers the limiter adjusts to.
            raw = await self._client.messages.with_raw_response.create(**kwargs, timeout=timeout)
            response = _response(await raw.parse(), structured=request.structured)
            response.headers = rate_headers(raw.headers)
            return response
        except anthropic.AnthropicError as exc:
            raise provider_error(exc, model=f"anthropic:{self.model}", sdk=anthropic) from exc
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"anthropic:{self.model} returned a reply without the expected fields: {exc}",
                model=f"anthropic:{self.model}",
                hint="is base_url an endpoint speaking Anthropic's Messages API?",
            ) from exc

    async def _stream(
        self, kwargs: dict[str, Any], sink: TextSink, timeout: float
    ) -> ModelResponse:
        # Server-sent events: message_start (input usage), text deltas, message_delta
        # (stop reason, output usage), message_stop.
        events = await self._client.messages.create(**kwargs, stream=True, timeout=timeout)
        text: list[str] = []
        input_tokens = output_tokens = 0
        model, stop = "", None
        try:
            async for event in events:
                if event.type == "message_start":
                    model = event.message.model or model
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text.append(event.delta.text)
                    await sink(event.delta.text)
                elif event.type == "message_delta":
                    stop = event.delta.stop_reason or stop
                    output_tokens = event.usage.output_tokens
        finally:
            await events.close()
        usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
        # The stream's HTTP response carries the rate-limit headers, as a whole reply's does.
        return ModelResponse(text="".join(text), usage=usage, model=model, finish_reason=stop,
                             headers=rate_headers(events.response.headers))  # fmt: skip

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()


def _wire_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content,
            }
            if m.is_error:
                block["is_error"] = True
            # The results of one round of calls go back together, in one user turn.
            if wire and wire[-1]["role"] == "user" and isinstance(wire[-1]["content"], list):
                wire[-1]["content"].append(block)
            else:
                wire.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {"type": "tool_use", "id": c.call_id, "name": c.name, "input": _as_object(c)}
                for c in m.tool_calls
            ]
            wire.append({"role": "assistant", "content": blocks})
        else:
            wire.append({"role": m.role, "content": m.content})
    return wire


def _as_object(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:
        return {}


def _response(reply: Any, *, structured: Any) -> ModelResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    answer: str | None = None
    for block in reply.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = json.dumps(block.input) if not isinstance(block.input, str) else block.input
            if structured is not None and block.name == structured.name:
                answer = arguments
            else:
                calls.append(ToolCall(call_id=block.id, name=block.name, arguments=arguments))
    usage = reply.usage
    return ModelResponse(
        text="".join(texts),
        tool_calls=calls,
        structured=(answer if answer is not None else "".join(texts))
        if structured is not None
        else None,
        usage=TokenUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        if usage is not None
        else None,
        model=reply.model or "",
        finish_reason=reply.stop_reason,
    )
