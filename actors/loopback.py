"""A loopback HTTP server speaking the OpenAI Chat Completions and Anthropic Messages wire
formats, for testing and benchmarking with the real SDKs and no network.

It runs aiohttp in a background thread (its own event loop), on 127.0.0.1 and a free
port, so the test's loop, and Ray worker processes on the same machine, can call it.
Each model has a script of `Step`s (answer, tool calls, JSON, HTTP error, delay,
malformed body) consumed in order, or a standing behaviour set with `always`; with
neither, it echoes the last user message. Every request is recorded. A request with
``"stream": true`` is answered with server-sent events in the API's own format, the text
word by word, ``chunk_delay_s`` apart. Given `limits`, it enforces rate limits like a
provider (429s and headers; see `actors._loopback_limits`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from actors._loopback_limits import LoopbackLimits

__all__ = ["LoopbackLLMServer", "LoopbackLimits", "Recorded", "Step"]


@dataclass
class Step:
    """One scripted reply."""

    text: str | None = None
    #: (tool name, arguments) pairs the model "calls".
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The structured reply: JSON text (OpenAI content) or an object (Anthropic tool input).
    structured: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    #: A raw body sent as is (malformed JSON, say).
    raw_body: str | None = None
    usage: tuple[int, int] | None = (12, 5)
    #: Seconds between the events of a streamed answer.
    chunk_delay_s: float = 0.0


@dataclass
class Recorded:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    #: Header names in lower case.
    headers: dict[str, str]
    at: float


class LoopbackLLMServer:
    """The server; use as a context manager (``with LoopbackLLMServer() as server``)."""

    def __init__(self, limits: LoopbackLimits | None = None) -> None:
        self.limits = limits
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Step]] = {}
        self._always: dict[str, Step] = {}
        self._deciders: dict[str, Callable[[dict[str, Any]], Step]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def openai_url(self) -> str:
        """The base_url for the openai SDK."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """The base_url for the anthropic SDK."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def script(self, model: str, *steps: Step) -> None:
        """Queue replies for `model`, used one per request."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(steps)

    def always(self, model: str, step: Step) -> None:
        """Answer every request for `model` (after its script) with `step`."""
        with self._lock:
            self._always[model] = step

    def respond_with(self, model: str, decide: Callable[[dict[str, Any]], Step]) -> None:
        """Answer every request for `model` (after its script) with `decide(request body)`."""
        with self._lock:
            self._deciders[model] = decide

    def reset(self) -> None:
        """Forget scripts, standing behaviours and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self._deciders.clear()
            self.requests.clear()

    def requests_for(self, model: str) -> list[Recorded]:
        """Return the requests that named `model`."""
        with self._lock:
            return [r for r in self.requests if r.body.get("model") == model]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        # Scripted delays may still be running at the end: do not wait for them.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))  # a free port, known before serving
        self.port = listening.getsockname()[1]
        await web.SockSite(self._runner, listening).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next(self, request: web.Request) -> tuple[dict[str, Any], Step | None]:
        body = await request.json()
        with self._lock:
            self.requests.append(
                Recorded(
                    request.path,
                    body,
                    {k.lower(): v for k, v in request.headers.items()},
                    time.time(),
                )
            )
            model = str(body.get("model"))
            queue = self._scripts.get(model)
            step = queue.popleft() if queue else self._always.get(model)
            decide = None if queue or step is not None else self._deciders.get(model)
        if decide is not None:
            step = decide(body)
        if self.limits is not None:
            step = self.limits.admit(request.path, body, step, refuse=Step)
        if step is not None and step.delay_s:
            await asyncio.sleep(step.delay_s)
        return body, step

    @staticmethod
    def _failure(step: Step, *, anthropic: bool) -> web.Response | None:
        if step.raw_body is not None:
            return web.Response(
                status=step.status, text=step.raw_body, content_type="application/json",
                headers=step.headers,
            )  # fmt: skip
        if step.status == 200:
            return None
        message = f"scripted failure {step.status}"
        error = (
            {"type": "error", "error": {"type": "api_error", "message": message}}
            if anthropic
            else {"error": {"message": message, "type": "server_error", "code": None}}
        )
        return web.json_response(error, status=step.status, headers=step.headers)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body, step = await self._next(request)
        step = step or Step(text=_echo(body["messages"], anthropic=False))
        if (failure := self._failure(step, anthropic=False)) is not None:
            return failure
        n = next(self._ids)
        if body.get("stream"):
            return await _sse(request, _openai_events(body, step, n), step)
        calls = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(step.tool_calls)
        ]
        content = step.structured if step.structured is not None else step.text
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                }
            ],
        }
        if step.usage is not None:
            reply["usage"] = {
                "prompt_tokens": step.usage[0],
                "completion_tokens": step.usage[1],
                "total_tokens": sum(step.usage),
            }
        return web.json_response(reply, headers=step.headers)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body, step = await self._next(request)
        step = step or Step(text=_echo(body["messages"], anthropic=True))
        if (failure := self._failure(step, anthropic=True)) is not None:
            return failure
        n = next(self._ids)
        if body.get("stream"):
            return await _sse(request, _anthropic_events(body, step, n), step)
        content: list[dict[str, Any]] = []
        if step.text:
            content.append({"type": "text", "text": step.text})
        for i, (name, args) in enumerate(step.tool_calls):
            content.append(
                {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
            )
        forced = (body.get("tool_choice") or {}).get("name")
        if step.structured is not None and forced:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{n}_s",
                    "name": forced,
                    "input": json.loads(step.structured),
                }
            )
        reply = {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": "tool_use" if step.tool_calls or forced else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": (step.usage or (0, 0))[0],
                "output_tokens": (step.usage or (0, 0))[1],
            },
        }
        return web.json_response(reply, headers=step.headers)


def _echo(messages: list[dict[str, Any]], *, anthropic: bool) -> str:
    """Answer with the last user text, or with the tool results it carries."""
    last = messages[-1]
    if not anthropic and last.get("role") == "tool":
        return f"tool said: {last['content']}"
    content = last.get("content")
    if isinstance(content, list):
        results = [b.get("content") for b in content if b.get("type") == "tool_result"]
        if results:
            return f"tool said: {'; '.join(str(r) for r in results)}"
        content = " ".join(str(b.get("text", "")) for b in content)
    return f"echo: {content}"


async def _sse(
    request: web.Request, events: list[tuple[str | None, Any]], step: Step
) -> web.StreamResponse:
    """Send `events` as server-sent events, the step's `chunk_delay_s` apart, with its
    headers (a provider's rate-limit headers come on a stream's response too); a str is
    sent as is."""
    delay_s = step.chunk_delay_s
    response = web.StreamResponse(
        headers={**step.headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    for index, (name, data) in enumerate(events):
        if index and delay_s:
            await asyncio.sleep(delay_s)
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        await response.write(f"{head}data: {text}\n\n".encode())
    await response.write_eof()
    return response


def _words(step: Step) -> list[str]:
    text = step.structured if step.structured is not None else step.text or ""
    return re.findall(r"\s*\S+\s*|\s+", text)


def _openai_events(body: dict[str, Any], step: Step, n: int) -> list[tuple[str | None, Any]]:
    """A streamed Chat Completion: chat.completion.chunk events, the usage, then [DONE]."""
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body["model"]}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    events += [(None, chunk({"content": word})) for word in _words(step)]
    events.append((None, chunk({}, "stop")))
    if step.usage is not None:
        usage = {"prompt_tokens": step.usage[0], "completion_tokens": step.usage[1],
                 "total_tokens": sum(step.usage)}  # fmt: skip
        events.append((None, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def _anthropic_events(body: dict[str, Any], step: Step, n: int) -> list[tuple[str | None, Any]]:
    """A streamed Message: message_start, text deltas in one block, message_delta, message_stop."""
    tokens_in, tokens_out = step.usage or (0, 0)
    message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": body["model"],
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": tokens_in, "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]  # fmt: skip
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": word}})
        for word in _words(step)
    ]  # fmt: skip
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": tokens_out}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return events
