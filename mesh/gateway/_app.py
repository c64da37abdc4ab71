"""The gateway's HTTP API: a FastAPI app per replica, over the replica's own `Mesh`.

Every request is admitted in one order: its bearer token (401), its client's rate
(429), its body's size (413), its body's shape (400); then it is asked of an agent
with the deadline from ``X-Raymesh-Deadline-S`` (capped by the serve block's
``max_deadline_s``) or the serve block's ``deadline_s``. Every error is JSON in
OpenAI's shape with the mesh error's type and hint (`mesh.gateway._errors`).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mesh.errors import TraceNotFoundError
from mesh.gateway._a2a import mount_a2a
from mesh.gateway._access import RateLimiter
from mesh.gateway._errors import (
    BadRequestError,
    RequestTooLargeError,
    TooManyRequestsError,
    UnknownModelError,
    error_body,
    status_of,
)
from mesh.gateway._openai import (
    ChatRequest,
    EntryPoint,
    Piece,
    chat_chunks,
    completion_body,
    error_events,
)
from mesh.gateway._settings import GatewaySettings
from mesh.observability import get_logger
from mesh.security import redact_data
from protocols import Message, Task, new_trace_id
from protocols.errors import MeshError

__all__ = ["DEADLINE_HEADER", "TRACE_HEADER", "Driver", "build_app"]

DEADLINE_HEADER = "X-Raymesh-Deadline-S"
TRACE_HEADER = "X-Raymesh-Trace-Id"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
B = TypeVar("B", bound=BaseModel)


class _OpenStream(AbstractAsyncContextManager["_OpenStream"], Protocol):
    """The streaming contract's `Stream`, as far as the gateway uses it."""

    trace_id: str
    reply: Message | None

    def __aiter__(self) -> AsyncIterator[Piece]: ...


class Driver(Protocol):
    """What the gateway asks of a `Mesh` (``stream`` is the streaming contract's)."""

    async def ask(self, name: str, msg: Message, *, timeout: float | None = ...,
                  trace_id: str | None = ...) -> Message | None: ...  # fmt: skip
    async def trace(self, trace_id: str | None = None) -> list[dict[str, Any]]: ...
    def stream(self, name: str, msg: Message, *, timeout: float | None = None) -> _OpenStream: ...


class TaskRequest(BaseModel):
    """The body of ``POST /v1/tasks``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    agent: str | None = Field(None, description="The agent to ask (default: the team's entry).")


@dataclass
class _Admission:
    """The checks every request passes, in order, before it reaches an agent."""

    settings: GatewaySettings
    limiter: RateLimiter

    def client(self, request: Request) -> str:
        client = self.settings.tokens.client(request.headers.get("authorization"))
        self.limiter.take(client)
        return client

    async def body(self, request: Request, model: type[B]) -> B:
        limit = self.settings.spec.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise _too_large(len(data), limit)
        try:
            return model.model_validate_json(bytes(data))
        except ValidationError as exc:
            # Without the input values: a body may hold anything.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise BadRequestError(
                f"the request body is not a valid {model.__name__}: {problems}",
                hint="see the serving guide for the fields each endpoint takes",
            ) from None

    def deadline(self, request: Request) -> float:
        spec = self.settings.spec
        given = request.headers.get(DEADLINE_HEADER)
        if given is None:
            return spec.deadline_s
        try:
            seconds = float(given)
        except ValueError:
            seconds = math.nan
        if not (seconds > 0 and math.isfinite(seconds)):
            raise BadRequestError(
                f"{DEADLINE_HEADER} must be a positive number of seconds",
                hint=f"e.g. {DEADLINE_HEADER}: 30",
            )
        return min(seconds, spec.max_deadline_s)


def _too_large(size: int, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"the request body is {size} bytes, over the limit of {limit}",
        hint="send less, or raise serve.max_body_bytes in the team file",
    )


def _error_response(_: Request, exc: Exception) -> Response:
    status = status_of(exc)
    headers = {}
    if isinstance(exc, TooManyRequestsError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, MeshError) and exc.trace_id:
        headers[TRACE_HEADER] = exc.trace_id
    if status >= 500:
        get_logger().warning("gateway request failed", status=status, error=type(exc).__name__)
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


def build_app(settings: GatewaySettings, mesh: Driver) -> FastAPI:
    """Return the gateway's API over `mesh`, configured by `settings` (one per replica)."""
    spec = settings.spec
    app = FastAPI(title=f"raymesh team {settings.team}", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    if spec.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(spec.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", DEADLINE_HEADER],
            expose_headers=[TRACE_HEADER, "Retry-After"],
        )
    app.add_exception_handler(Exception, _error_response)
    app.add_exception_handler(MeshError, _error_response)
    admit = _Admission(settings, RateLimiter(spec.rate_per_s, spec.burst))

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        admit.client(request)
        owner = f"raymesh:{settings.team}"
        data = [{"id": name, "object": "model", "created": 0, "owned_by": owner,
                 "agent": entry.agent} for name, entry in settings.models.items()]  # fmt: skip
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        admit.client(request)
        chat = await admit.body(request, ChatRequest)
        entry = settings.models.get(chat.model)
        if entry is None:
            raise UnknownModelError(
                f"no model {chat.model!r} in team {settings.team!r}",
                hint=f"models: {', '.join(settings.models)} (GET /v1/models)",
            )
        msg, timeout = entry.message(chat), admit.deadline(request)
        if chat.stream:
            events = _streamed(mesh, entry, msg, timeout, chat)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})  # fmt: skip
        trace_id = new_trace_id()
        reply = await mesh.ask(entry.agent, msg, timeout=timeout, trace_id=trace_id)
        body = completion_body(_masked(reply), model=chat.model, trace_id=trace_id)
        return JSONResponse(body, headers={TRACE_HEADER: trace_id})

    @app.post("/v1/tasks")
    async def tasks(request: Request) -> Response:
        admit.client(request)
        task = await admit.body(request, TaskRequest)
        agent = task.agent or settings.task_agent
        if agent not in settings.agents:
            raise UnknownModelError(
                f"no agent {agent!r} in team {settings.team!r}",
                hint="name one of the team's agents, or none for its entry",
            )
        trace_id = new_trace_id()
        timeout = admit.deadline(request)
        reply = _masked(await mesh.ask(agent, Task(text=task.text), timeout=timeout,
                                       trace_id=trace_id))  # fmt: skip
        result = {"type": None if reply is None else reply.type_tag,
                  "data": None if reply is None else reply.model_dump(mode="json")}  # fmt: skip
        body = {"trace_id": trace_id, "agent": agent, "result": result}
        return JSONResponse(body, headers={TRACE_HEADER: trace_id})

    @app.get("/v1/traces/{trace_id}")
    async def traces(trace_id: str, request: Request) -> dict[str, Any]:
        admit.client(request)
        if not _TRACE_ID.match(trace_id):
            raise BadRequestError(f"{trace_id[:64]!r} is not a trace id",
                                  hint="a trace id is 32 lower-case hex digits")  # fmt: skip
        spans = await mesh.trace(trace_id)
        if not spans:
            raise TraceNotFoundError(
                f"no spans are kept for trace {trace_id}",
                trace_id=trace_id,
                hint="the mesh keeps its most recent traces while it runs",
            )
        return {"trace_id": trace_id, "spans": redact_data(spans)}

    mount_a2a(app, settings, mesh, gate=_a2a_gate(settings, admit), refuse=_error_response)
    return app


def _a2a_gate(settings: GatewaySettings, admit: _Admission) -> Callable[[Request], None]:
    """The admission of an A2A request: its token, its client's rate, its declared size."""

    def gate(request: Request) -> None:
        admit.client(request)
        declared, limit = request.headers.get("content-length", ""), settings.spec.max_body_bytes
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)

    return gate


def _masked(reply: Message | None) -> Message | None:
    """The reply with any secret in it masked, as `Mesh.run` masks a run's answer."""
    if reply is None:
        return None
    return type(reply).model_validate(redact_data(reply.model_dump()))


async def _streamed(
    mesh: Driver, entry: EntryPoint, msg: Message, timeout: float, chat: ChatRequest
) -> AsyncIterator[str]:
    """The server-sent events of a streamed ask; leaving early cancels the chain below.

    The response has begun (200) by the time the stream fails: its error is an event.
    """
    try:
        async with mesh.stream(entry.agent, msg, timeout=timeout) as stream:
            events = chat_chunks(stream, model=chat.model, agent=entry.agent,
                                 trace_id=stream.trace_id, reply=lambda: _masked(stream.reply),
                                 include_usage=chat.include_usage)  # fmt: skip
            async for event in events:
                yield event
    except Exception as exc:  # opening the stream failed: no chunk was sent yet
        for event in error_events(exc):
            yield event
