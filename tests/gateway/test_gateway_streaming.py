"""``stream: true`` end to end: the openai SDK's stream and the raw server-sent events.

These need `Mesh.stream` (the streaming contract of issue 20), built on another branch:
on the gateway's branch alone they fail; they pass once both are merged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from _served import TOKENS, served

from mesh import Mesh
from mesh.gateway import DEADLINE_HEADER

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
async def base_url(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with served(mesh, tmp_path_factory.mktemp("gateway-stream")) as url:
        yield url


async def test_the_openai_sdk_streams_a_chat_with_usage_at_the_end(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TOKENS["alice"], max_retries=0)
    stream = await client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Stream a greeting to the gateway"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = "".join(pieces)
    assert "Stream a greeting to the gateway" in text  # the offline model answers with it
    assert len([p for p in pieces if p]) > 1  # in pieces, not in one
    assert finish == "stop"
    assert usage is not None
    assert usage.total_tokens > 0
    await client.close()


async def test_raw_server_sent_events_end_in_done(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['bob']}"}
    body = {"model": "assistant", "stream": True,
            "messages": [{"role": "user", "content": "raw events please"}]}  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http,
        http.stream("POST", "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line async for line in response.aiter_lines() if line]
    assert all(line.startswith("data: ") for line in events), events
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "raw events please" in text


async def test_a_deadline_mid_stream_is_an_error_event(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['bob']}", DEADLINE_HEADER: "0.5"}
    body = {"model": "sleeper", "stream": True,
            "messages": [{"role": "user", "content": "too slow"}]}  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http,
        http.stream("POST", "/chat/completions", json=body) as response,
    ):
        events = [line async for line in response.aiter_lines() if line]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["type"] == "DeadlineExceededError"
    assert error["hint"]
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TOKENS["alice"], max_retries=0,
                                default_headers={DEADLINE_HEADER: "0.5"})  # fmt: skip
    stream = await client.chat.completions.create(
        model="sleeper", messages=[{"role": "user", "content": "too slow"}], stream=True
    )
    with pytest.raises(openai.APIError, match="deadline"):
        await _drain(stream)
    await client.close()


async def _drain(stream: AsyncIterator[object]) -> None:
    async for _ in stream:
        pass
