"""A raymesh agent asks a remote A2A agent (an a2a-sdk server the test starts on a loopback
port) as a peer: answer, trace id in the metadata, deadline with A2A cancel, budget, and an
unreachable URL failing the start."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from _ports import free_port
from a2a.helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

from actors import BudgetExceededError, RemoteAgentError
from actors.a2a import A2AAgent
from mesh import ConfigError, DeadlineExceededError, Mesh
from protocols import Result, Task

pytestmark = pytest.mark.ray

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Remote(AgentExecutor):
    """Answers at once, or (a task with "slow" in it) waits to be cancelled."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []
        self.cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        self.metadata.append(MessageToDict(context.message.metadata))
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = context.get_user_input()
        if "slow" in text:
            await asyncio.sleep(60)
        await updater.add_artifact([Part(text=f"remote answer to: {text}")])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.cancelled.append(str(context.task_id))
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


@pytest.fixture(scope="module")
def remote() -> Iterator[tuple[str, Remote]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    card = AgentCard(
        name="remote-echo",
        description="Answers a task (a test's A2A agent)",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url + "/", protocol_binding="JSONRPC")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[AgentSkill(id="answer", name="answer", description="answers", tags=["test"])],
    )
    executor = Remote()
    handler = DefaultRequestHandler(executor, InMemoryTaskStore(), card)
    app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the A2A server did not start"
        time.sleep(0.05)
    yield url, executor
    server.should_exit = True
    thread.join(10)


@pytest.fixture
async def peer(mesh: Mesh, remote: tuple[str, Remote]) -> Any:
    url, _ = remote
    team = await mesh.team({"name": "a2a-team",
                            "agents": [{"name": "remote", "agent": f"a2a:{url}"}]})  # fmt: skip
    yield "remote"
    await team.stop()


async def test_a_mesh_agent_asks_the_remote_agent_with_the_trace_id(
    mesh: Mesh, remote: tuple[str, Remote], peer: str
) -> None:
    _, executor = remote
    reply = await mesh.ask(peer, Task(text="hello there"), timeout=20, trace_id=TRACE,
                           expect=Result)  # fmt: skip
    assert reply.text == "remote answer to: hello there"
    assert executor.metadata[-1]["trace_id"] == TRACE
    assert executor.metadata[-1]["traceparent"].startswith(f"00-{TRACE}-")


async def test_the_deadline_cuts_the_remote_task_and_cancels_it(
    mesh: Mesh, remote: tuple[str, Remote], peer: str
) -> None:
    _, executor = remote
    before = len(executor.cancelled)
    began = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        await mesh.ask(peer, Task(text="slow one"), timeout=2, expect=Result)
    assert time.monotonic() - began < 8
    deadline = time.monotonic() + 10
    while len(executor.cancelled) == before:
        assert time.monotonic() < deadline, "the remote task was not cancelled"
        await asyncio.sleep(0.1)


async def test_a_spent_budget_is_refused_before_anything_is_sent(
    mesh: Mesh, remote: tuple[str, Remote], peer: str
) -> None:
    _, executor = remote
    sent = len(executor.metadata)
    with pytest.raises(BudgetExceededError):
        await mesh.ask(peer, Task(text="x"), timeout=10, budget={"tokens": 0}, expect=Result)
    assert len(executor.metadata) == sent


async def test_an_unreachable_url_fails_the_start(mesh: Mesh) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    # The host reports a failed start as a ConfigError naming the agent's own error.
    with pytest.raises(
        ConfigError, match=f"RemoteAgentError: cannot read the agent card of {dead}"
    ):
        await mesh.team({"name": "gone", "agents": [{"name": "gone", "agent": f"a2a:{dead}"}]})


async def test_the_remote_agents_error_is_typed_on_the_agent_itself(
    remote: tuple[str, Remote],
) -> None:
    agent = A2AAgent(f"http://127.0.0.1:{free_port()}", card_timeout_s=5)
    with pytest.raises(RemoteAgentError) as failed:
        await agent.on_start()
    assert failed.value.hint
    live = A2AAgent(remote[0])
    await live.on_start()
    try:
        assert live.card is not None
        assert live.card.name == "remote-echo"
    finally:
        await live.on_stop()
