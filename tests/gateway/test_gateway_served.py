"""A team served through Ray Serve, called with the real openai SDK and with raw HTTP.

Non-streaming chat, the models listing, tasks and their traces, and every refusal:
401, 413, 429, 504, 404, 400, each as OpenAI's error JSON with the mesh error's type.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from _served import TOKENS, served

from benchmarks.chaos._sweep import Place, sweep_files
from benchmarks.chaos.secrets import session_log_dir
from mesh import Mesh
from mesh.gateway import DEADLINE_HEADER, TRACE_HEADER
from mesh.ops import status_rows

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
async def base_url(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with served(mesh, tmp_path_factory.mktemp("gateway")) as url:
        yield url


def _auth(client: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[client]}"}


def _error(response: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["type"] == kind, body
    assert body["message"]
    assert body["hint"]
    for token in TOKENS.values():
        assert token not in response.text
    return dict(body)


def _chat(model: str = "assistant", text: str = "Say hello") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def test_the_openai_sdk_gets_a_chat_completion_with_usage(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TOKENS["alice"], max_retries=0)
    reply = await client.chat.completions.create(
        model="assistant",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Say hello to the gateway"}],
    )  # fmt: skip
    assert reply.object == "chat.completion"
    assert reply.model == "assistant"
    assert reply.id.startswith("chatcmpl-")
    content = reply.choices[0].message.content
    assert content is not None
    assert "Say hello to the gateway" in content  # the offline model answers with the prompt
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    await client.close()


async def test_the_models_are_the_teams_entry_agents(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TOKENS["alice"], max_retries=0)
    models = [model.id async for model in client.models.list()]
    assert sorted(models) == ["assistant", "sleeper"]  # the team's and its sub-team's entry
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(
            model="nobody", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["type"] == "UnknownModelError"  # type: ignore[index]
    await client.close()


async def test_a_task_returns_its_typed_result_and_trace_whose_spans_are_served(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("bob"), timeout=60) as http:
        response = await http.post("/tasks", json={"text": "list three colours"})
        assert response.status_code == 200, response.text
        body = response.json()
        trace_id = body["trace_id"]
        assert response.headers[TRACE_HEADER] == trace_id
        assert body["agent"] == "assistant"
        assert body["result"]["type"] == "raymesh.result/1"
        assert "list three colours" in body["result"]["data"]["text"]
        spans: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # spans reach the store within a flush period
            traced = await http.get(f"/traces/{trace_id}")
            if traced.status_code == 200:
                spans = traced.json()["spans"]
                if any(span["attributes"]["raymesh.agent"] == "assistant" for span in spans):
                    break
            await asyncio.sleep(1.0)  # the serve block's rate: 1 request/s after the burst
        assert {span["trace_id"] for span in spans} == {trace_id}
        assert any(span["attributes"]["raymesh.agent"] == "assistant" for span in spans)
        _error(await http.get("/traces/" + "0" * 32), 404, "TraceNotFoundError")
        _error(await http.get("/traces/not-a-trace"), 400, "BadRequestError")
        _error(
            await http.post("/tasks", json={"text": "x", "agent": "ghost"}),
            404,
            "UnknownModelError",
        )


async def test_requests_without_a_known_bearer_token_are_refused(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        _error(await http.get("/models"), 401, "UnauthorizedError")
        _error(await http.post("/chat/completions", json=_chat()), 401, "UnauthorizedError")
        wrong = {"Authorization": "Bearer " + TOKENS["bob"] + "x"}
        _error(await http.get("/models", headers=wrong), 401, "UnauthorizedError")
        not_a_gateway_token = {"Authorization": "Bearer sk-notagatewaytoken1234567890"}
        _error(await http.get("/models", headers=not_a_gateway_token), 401, "UnauthorizedError")


async def test_a_body_over_the_limit_is_413_declared_or_not(base_url: str) -> None:
    big = _chat(text="x" * 5000)  # the serve block allows 4096 bytes
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("dave"), timeout=60) as http:
        _error(await http.post("/chat/completions", json=big), 413, "RequestTooLargeError")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            data = json.dumps(big).encode()
            for start in range(0, len(data), 1000):
                yield data[start : start + 1000]

        _error(await http.post("/chat/completions", content=chunked()), 413, "RequestTooLargeError")


async def test_bad_input_is_400(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("erin"), timeout=60) as http:
        _error(await http.post("/chat/completions", content=b"{not json"), 400, "BadRequestError")
        _error(
            await http.post("/chat/completions", json={"model": "assistant"}),
            400,
            "BadRequestError",
        )
        bad_deadline = {DEADLINE_HEADER: "soon"}
        _error(
            await http.post("/chat/completions", json=_chat(), headers=bad_deadline),
            400,
            "BadRequestError",
        )


async def test_the_deadline_header_ends_a_slow_ask_with_504(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("frank"), timeout=60) as http:
        started = time.monotonic()
        response = await http.post(
            "/chat/completions", json=_chat("sleeper"), headers={DEADLINE_HEADER: "0.5"}
        )
        took = time.monotonic() - started
        body = _error(response, 504, "DeadlineExceededError")
        assert body["trace_id"] == response.headers[TRACE_HEADER]
        assert took < 6  # the sleeper's model takes 8 s: the deadline ended it sooner
        started = time.monotonic()
        response = await http.post(
            "/chat/completions", json=_chat("sleeper"), headers={DEADLINE_HEADER: "100"}
        )
        took = time.monotonic() - started
        _error(response, 504, "DeadlineExceededError")
        assert 4.5 < took < 7.9  # capped by the serve block's max_deadline_s (5 s)


async def test_a_burst_over_the_rate_limit_gets_429_with_retry_after(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("carol"), timeout=60) as http:
        responses = await asyncio.gather(*(http.get("/models") for _ in range(40)))
    statuses = [r.status_code for r in responses]
    assert 200 in statuses  # the burst of 10 is let through
    limited = [r for r in responses if r.status_code == 429]
    assert limited, statuses
    _error(limited[0], 429, "TooManyRequestsError")
    assert int(limited[0].headers["Retry-After"]) >= 1
    async with httpx.AsyncClient(base_url=base_url, headers=_auth("bob"), timeout=60) as http:
        assert (await http.get("/models")).status_code == 200  # another client: its own bucket


async def test_cors_is_off_unless_configured(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        preflight = await http.options(
            "/chat/completions",
            headers={"Origin": "https://chat.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers


async def test_raymesh_status_lists_the_gateway(mesh: Mesh, base_url: str) -> None:
    agents, gateways = await status_rows(mesh)
    assert {"assistant", "sleeper"} <= {row["name"] for row in agents}
    (row,) = [g for g in gateways if g["application"] == "raymesh-served"]
    assert row["status"] == "RUNNING"
    assert row["replicas"] == 1
    assert row["route"] == "/"
    assert row["url"] == base_url.removesuffix("/v1") + "/"
    assert row["models"] == ["assistant", "sleeper"]


async def test_no_token_reaches_the_ray_session_logs(base_url: str) -> None:
    # After every test above: good tokens, wrong ones, refusals, errors, traces.
    await asyncio.sleep(1.0)  # Ray flushes the replicas' output to the session logs
    canaries = [*TOKENS.values(), TOKENS["bob"] + "x"]
    session = sweep_files(Place("Ray session logs", "files"), session_log_dir(), canaries)
    assert session.items > 0
    assert session.hits == 0, session.found
