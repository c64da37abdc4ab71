"""The gateway's A2A server, called with the official a2a-sdk client against a team served
through Ray Serve (once per module): the card, send, stream, get, cancel of a slow task, a
deadline failure, and the bearer token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from _ports import free_port
from a2a.client import A2ACardResolver, Client, ClientConfig, create_client
from a2a.server.context import ServerCallContext
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
)
from google.protobuf.json_format import MessageToDict
from ray import serve

from mesh import Mesh
from mesh.control import load_team
from mesh.gateway import BoundedTaskStore, TokenCheck, deploy_gateway, gateway_settings, load_tokens

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

TEAM = Path(__file__).parents[1] / "gateway" / "team.yaml"
#: A token per test, so that one test's requests never spend another's rate.
TOKENS = {c: f"{c}-token-" + "k3" * 12 for c in ("card", "send", "stream", "cancel", "late")}


@pytest.fixture(scope="module")
async def root(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The served test team's gateway (…, no /v1): its A2A agents are under /a2a."""
    secrets = tmp_path_factory.mktemp("a2a") / "gateway.env"
    secrets.write_text("".join(f"RAYMESH_GATEWAY_TOKEN_{c.upper()}={t}\n"
                               for c, t in TOKENS.items()))  # fmt: skip
    secrets.chmod(0o600)
    spec = load_team(TEAM)
    team = await mesh.team(spec)
    settings = gateway_settings(spec, tokens=TokenCheck(load_tokens(secrets)),
                                config=mesh.config, port=free_port())  # fmt: skip
    try:
        yield await asyncio.to_thread(deploy_gateway, settings)
    finally:
        await asyncio.to_thread(serve.shutdown)
        await team.stop()


async def _client(
    root: str, who: str, agent: str, *, streaming: bool
) -> tuple[Client, httpx.AsyncClient]:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30)
    card = await A2ACardResolver(http, f"{root}/a2a/{agent}").get_agent_card()
    config = ClientConfig(streaming=streaming, httpx_client=http)
    return await create_client(card, client_config=config), http


def _ask(text: str, **metadata: object) -> SendMessageRequest:
    message = Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text=text)])
    message.metadata.update(metadata)
    return SendMessageRequest(message=message)


async def test_the_card_names_the_agent_streaming_and_bearer_auth(root: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS['card']}"}) as http:
        card = await A2ACardResolver(http, f"{root}/a2a/assistant").get_agent_card()
        assert card.name == "assistant"
        assert "served" in card.description
        assert card.capabilities.streaming
        assert card.supported_interfaces[0].url == f"{root}/a2a/assistant/"
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "bearer"
        assert [s.id for s in card.skills] == ["assistant"]
        unknown = await http.get(f"{root}/a2a/nobody/.well-known/agent-card.json")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["type"] == "UnknownModelError"
    async with httpx.AsyncClient() as anonymous:
        refused = await anonymous.get(f"{root}/a2a/assistant/.well-known/agent-card.json")
        assert refused.status_code == 401
        call = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage"}
        rpc = await anonymous.post(f"{root}/a2a/assistant/", json=call)
        assert rpc.status_code == 401


async def test_send_returns_the_answer_and_trace_id_and_get_finds_the_task(root: str) -> None:
    client, http = await _client(root, "send", "assistant", streaming=False)
    events = [e async for e in client.send_message(_ask("Say hello over A2A"))]
    assert len(events) == 1
    assert events[0].HasField("task")
    task = events[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    answer = "".join(p.text for a in task.artifacts for p in a.parts)
    assert "Say hello over A2A" in answer  # the offline model answers with the prompt
    trace_id = MessageToDict(task.metadata)["trace_id"]
    assert len(trace_id) == 32
    again = await client.get_task(GetTaskRequest(id=task.id))
    assert again.status.state == TaskState.TASK_STATE_COMPLETED
    assert MessageToDict(again.metadata)["trace_id"] == trace_id
    await client.close()
    await http.aclose()


async def test_stream_sends_status_and_artifact_updates(root: str) -> None:
    client, http = await _client(root, "stream", "assistant", streaming=True)
    events: list[StreamResponse] = [e async for e in client.send_message(_ask("Stream a reply"))]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    assert "artifact_update" in kinds
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    text = "".join(p.text for e in events if e.HasField("artifact_update")
                   for p in e.artifact_update.artifact.parts)  # fmt: skip
    assert "Stream a reply" in text
    await client.close()
    await http.aclose()


async def test_a_slow_task_is_canceled(root: str) -> None:
    client, http = await _client(root, "cancel", "sleeper", streaming=True)
    stream = client.send_message(_ask("take your time"))
    first = await anext(stream)
    task_id = first.task.id
    began = time.monotonic()
    canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert time.monotonic() - began < 6  # the sleeper would take 8 s
    await stream.aclose()
    got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_CANCELED
    await client.close()
    await http.aclose()


async def test_a_deadline_fails_the_task_naming_the_error(root: str) -> None:
    client, http = await _client(root, "late", "sleeper", streaming=False)
    began = time.monotonic()
    events = [e async for e in client.send_message(_ask("too slow", deadline_s=0.5))]
    assert time.monotonic() - began < 6  # the sleeper would take 8 s
    task = events[-1].task
    assert task.status.state == TaskState.TASK_STATE_FAILED
    failure = "".join(p.text for p in task.status.message.parts)
    assert "DeadlineExceededError" in failure
    assert MessageToDict(task.status.message.metadata)["error_type"] == "DeadlineExceededError"
    bad = [e async for e in client.send_message(_ask("when?", deadline_s="soon"))]
    assert bad[-1].task.status.state == TaskState.TASK_STATE_FAILED
    assert "BadRequestError" in "".join(p.text for p in bad[-1].task.status.message.parts)
    await client.close()
    await http.aclose()


async def test_the_task_table_forgets_its_oldest_finished_task_first() -> None:
    store, call = BoundedTaskStore(limit=2), ServerCallContext()
    done = TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
    working = TaskStatus(state=TaskState.TASK_STATE_WORKING)
    await store.save(Task(id="a", context_id="c", status=working), call)
    await store.save(Task(id="b", context_id="c", status=done), call)
    await store.save(Task(id="c", context_id="c", status=done), call)
    assert await store.get("b", call) is None  # finished, so forgotten before the older "a"
    assert await store.get("a", call) is not None
    assert await store.get("c", call) is not None
