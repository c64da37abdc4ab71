"""The gateway's A2A server: each entry agent as an A2A agent, on the official ``a2a-sdk``.

Agent ``NAME`` (one per model ``GET /v1/models`` lists) is served under ``/a2a/NAME``: its
card at ``/a2a/NAME/.well-known/agent-card.json``, its JSON-RPC task API (send, stream,
get, cancel) at ``/a2a/NAME/``. The routes sit in the gateway's app, so its bearer tokens,
rate limit and body limit apply to them as to the OpenAI routes. A task is an ask read as a
stream (`Mesh.stream`): its chunks become artifact updates, its end the task's state, its
trace id the task's ``trace_id`` metadata. The task table is per replica and bounded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from a2a.helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    Message,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    Task,
    TaskState,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict
from starlette.routing import Mount

from mesh.gateway._errors import BadRequestError, UnknownModelError
from mesh.gateway._openai import EntryPoint
from mesh.gateway._settings import GatewaySettings
from mesh.security import redact
from protocols.errors import MeshError

__all__ = [
    "A2A_PREFIX",
    "MAX_TASKS",
    "BoundedTaskStore",
    "MeshExecutor",
    "agent_card",
    "mount_a2a",
]

#: Where the A2A agents are mounted in the gateway's app.
A2A_PREFIX = "/a2a"
#: Tasks a replica keeps per agent (the oldest finished ones are forgotten first).
MAX_TASKS = 1000
_DEADLINE_HEADER = "x-raymesh-deadline-s"
_FINISHED = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED,
             TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED}  # fmt: skip


class BoundedTaskStore(InMemoryTaskStore):
    """The SDK's in-memory task table, holding at most `limit` tasks (per replica)."""

    def __init__(self, limit: int = MAX_TASKS) -> None:
        super().__init__()
        self.limit = limit
        self._order: OrderedDict[str, Task] = OrderedDict()

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        self._order[task.id] = task
        self._order.move_to_end(task.id)
        while len(self._order) > self.limit:
            old = next((k for k, t in self._order.items() if t.status.state in _FINISHED),
                       next(iter(self._order)))  # fmt: skip
            del self._order[old]
            await super().delete(old, context)


class MeshExecutor(AgentExecutor):
    """Runs an A2A task as an ask of one entry agent, read as a stream."""

    def __init__(self, settings: GatewaySettings, mesh: Any, entry: EntryPoint) -> None:
        self.settings, self.mesh, self.entry = settings, mesh, entry

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Ask the entry agent the task's text; send its chunks, reply and end as events."""
        assert context.message is not None  # the SDK refuses a send without one
        task = context.current_task or new_task_from_user_message(context.message)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        try:
            timeout = self.deadline(context)
            msg = self.entry.request(text=context.get_user_input())
        except MeshError as exc:
            await event_queue.enqueue_event(task)
            await updater.failed(_error_message(exc, task))
            return
        async with self.mesh.stream(self.entry.agent, msg, timeout=timeout) as stream:
            task.metadata.update({"trace_id": stream.trace_id, "agent": self.entry.agent})
            await event_queue.enqueue_event(task)
            await updater.start_work()
            try:
                sent = False
                async for chunk in stream:
                    if chunk.text and chunk.agent == self.entry.agent:
                        await updater.add_artifact([Part(text=redact(chunk.text))],
                                                   artifact_id="answer", name="answer",
                                                   append=sent)  # fmt: skip
                        sent = True
                if not sent:
                    await updater.add_artifact([Part(text=_reply_text(stream.reply))],
                                               artifact_id="answer", name="answer")  # fmt: skip
            except MeshError as exc:
                await updater.failed(_error_message(exc, task))
                return
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Mark the task canceled; the SDK then cancels `execute`, which closes the stream."""
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()

    def deadline(self, context: RequestContext) -> float:
        """Seconds the ask may take: ``deadline_s`` in the message's or request's metadata,
        or the ``X-Raymesh-Deadline-S`` header, or the serve block's default; capped."""
        spec = self.settings.spec
        headers = context.call_context.state.get("headers", {})
        sent = MessageToDict(context.message.metadata) if context.message else {}
        given = {**context.metadata, **sent}.get("deadline_s", headers.get(_DEADLINE_HEADER))
        if given is None:
            return spec.deadline_s
        try:
            seconds = float(given)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (seconds > 0 and math.isfinite(seconds)):
            raise BadRequestError("deadline_s must be a positive number of seconds",
                                  hint='e.g. metadata {"deadline_s": 30}')  # fmt: skip
        return min(seconds, spec.max_deadline_s)


def _reply_text(reply: Any) -> str:
    text = getattr(reply, "text", None)
    if isinstance(text, str):
        return redact(text)
    return "" if reply is None else redact(reply.model_dump_json())


def _error_message(exc: MeshError, task: Task) -> Message:
    """The failed task's status message: the error's type, message and hint."""
    hint = getattr(exc, "hint", None)
    text = f"{type(exc).__name__}: {exc}" + (f" (hint: {hint})" if hint else "")
    msg = Message(role=Role.ROLE_AGENT, message_id=f"{task.id}-error", task_id=task.id,
                  context_id=task.context_id, parts=[Part(text=redact(text))])  # fmt: skip
    msg.metadata.update({"error_type": type(exc).__name__, "hint": hint or ""})
    return msg


def agent_card(settings: GatewaySettings, name: str, entry: EntryPoint, base_url: str) -> AgentCard:
    """The A2A card of entry agent `name`, served at `base_url` (…/a2a/NAME)."""
    doc = (entry.request.__doc__ or "").strip().splitlines()
    about = f"Agent {name} of raymesh team {settings.team}" + (f": {doc[0]}" if doc else "")
    return AgentCard(
        name=name,
        description=about,
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=base_url + "/", protocol_binding="JSONRPC")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id=name, name=name, description=about, tags=[settings.team])],
        security_schemes={"bearer": SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer"))},
        security_requirements=[SecurityRequirement(schemes={"bearer": StringList()})],
    )  # fmt: skip


def mount_a2a(
    app: FastAPI,
    settings: GatewaySettings,
    mesh: Any,
    *,
    gate: Callable[[Request], None],
    refuse: Callable[[Request, Exception], Response],
) -> None:
    """Serve each entry agent as an A2A agent under ``/a2a/NAME``.

    Args:
        app: The gateway's app.
        settings: The replica's settings.
        mesh: The replica's mesh.
        gate: The admission every A2A request passes (raises a `MeshError` to refuse).
        refuse: The gateway's error response for a refused request.
    """

    @app.middleware("http")
    async def admit_a2a(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith(A2A_PREFIX + "/"):
            try:
                gate(request)
            except MeshError as exc:
                return refuse(request, exc)
        return await call_next(request)  # type: ignore[no-any-return]

    @app.get(A2A_PREFIX + "/{name}" + AGENT_CARD_WELL_KNOWN_PATH)
    async def card(name: str, request: Request) -> Response:
        entry = settings.models.get(name)
        if entry is None:
            raise _unknown_agent(settings, name)
        base = f"{str(request.base_url).rstrip('/')}{A2A_PREFIX}/{name}"
        return JSONResponse(MessageToDict(agent_card(settings, name, entry, base)))

    for name, entry in settings.models.items():
        found = agent_card(settings, name, entry, f"{A2A_PREFIX}/{name}")
        handler = DefaultRequestHandler(MeshExecutor(settings, mesh, entry), BoundedTaskStore(),
                                        found)  # fmt: skip
        routes = create_jsonrpc_routes(handler, "/")
        app.router.routes.append(Mount(f"{A2A_PREFIX}/{name}", routes=routes))

    @app.api_route(A2A_PREFIX + "/{name}/{rest:path}", methods=["GET", "POST"])
    async def unknown(name: str) -> Response:
        raise _unknown_agent(settings, name)


def _unknown_agent(settings: GatewaySettings, name: str) -> UnknownModelError:
    return UnknownModelError(
        f"no A2A agent {name[:64]!r} in team {settings.team!r}",
        hint=f"agents: {', '.join(settings.models)} (GET /v1/models)",
    )
