"""Model answers streamed: the providers against the loopback server's SSE, and LLMAgent on Ray."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import Spawn

from actors import BudgetExceededError, Completion, LLMAgent, Prompt, Router
from actors.loopback import LoopbackLLMServer, Step
from actors.providers import ChatMessage, ModelRequest, ToolSpec, text_sink
from actors.providers.anthropic import AnthropicProvider
from actors.providers.offline import OfflineProvider
from actors.providers.openai import OpenAIProvider
from mesh import Mesh
from protocols import UsageQuery, UsageSummary

WORDS = " ".join(f"word{i}" for i in range(12))


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as running:
        yield running


def _loopback(model: str, server: LoopbackLLMServer) -> dict[str, object]:
    return {"router": Router(default=model), "base_urls": {model: server.openai_url},
            "api_keys": {model: "dummy"}}  # fmt: skip


def _request(text: str = "say it") -> ModelRequest:
    return ModelRequest(messages=[ChatMessage.user(text)], max_tokens=200)


async def _streamed(
    provider: object, request: ModelRequest
) -> tuple[list[tuple[float, str]], object]:
    pieces: list[tuple[float, str]] = []
    started = time.perf_counter()

    async def sink(piece: str) -> None:
        pieces.append((time.perf_counter() - started, piece))

    token = text_sink.set(sink)
    try:
        response = await provider.send(request, timeout=10)  # type: ignore[attr-defined]
    finally:
        text_sink.reset(token)
    return pieces, response


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_the_sdk_streams_the_loopback_servers_sse_word_by_word_with_the_final_usage(
    server: LoopbackLLMServer, kind: str
) -> None:
    model = f"sse-{kind}"
    server.script(model, Step(text=WORDS, usage=(21, 12), chunk_delay_s=0.02))
    provider = (
        OpenAIProvider(model, api_key="dummy", base_url=server.openai_url)
        if kind == "openai"
        else AnthropicProvider(model, api_key="dummy", base_url=server.anthropic_url)
    )
    try:
        pieces, response = await _streamed(provider, _request())
    finally:
        await provider.aclose()
    assert "".join(p for _, p in pieces) == WORDS
    assert len(pieces) == 12
    assert pieces[-1][0] - pieces[0][0] >= 0.15  # the pieces came apart, as sent
    assert response.text == WORDS  # type: ignore[attr-defined]
    assert response.usage.input_tokens == 21  # type: ignore[attr-defined]
    assert response.usage.output_tokens == 12  # type: ignore[attr-defined]
    assert response.model == model  # type: ignore[attr-defined]
    assert server.requests_for(model)[0].body["stream"] is True


async def test_a_request_with_tools_is_not_streamed(server: LoopbackLLMServer) -> None:
    server.script("sse-tools", Step(text="whole"))
    provider = OpenAIProvider("sse-tools", api_key="dummy", base_url=server.openai_url)
    tool = ToolSpec(name="t", parameters={"type": "object", "properties": {}})
    request = ModelRequest(messages=[ChatMessage.user("hi")], tools=[tool])
    try:
        pieces, response = await _streamed(provider, request)
    finally:
        await provider.aclose()
    assert pieces == []
    assert response.text == "whole"  # type: ignore[attr-defined]
    assert "stream" not in server.requests_for("sse-tools")[0].body


async def test_the_offline_model_streams_its_answer_with_its_latency_spread_over_the_words() -> (
    None
):
    provider = OfflineProvider("default", latency_s=0.4)
    whole = await provider.send(_request("tell me about meshes"), timeout=10)
    pieces, streamed = await _streamed(provider, _request("tell me about meshes"))
    assert "".join(p for _, p in pieces) == whole.text == streamed.text  # type: ignore[attr-defined]
    assert len(pieces) >= 3
    assert pieces[0][0] < 0.4 / 2  # the first word after a share of the latency
    assert pieces[-1][0] >= 0.35  # the whole answer after about all of it


@pytest.mark.ray
async def test_an_llm_agent_asked_through_stream_emits_the_models_text_and_replies_completion(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    model = "openai:sse-agent"
    server.always("sse-agent", Step(text=WORDS, usage=(30, 12)))
    agent = await spawn(LLMAgent, "streamer", **_loopback(model, server))
    async with mesh.stream(agent.name, Prompt(text="go")) as s:
        chunks = [chunk async for chunk in s]
    assert "".join(c.text for c in chunks) == WORDS
    assert len(chunks) == 12
    assert {c.agent for c in chunks} == {agent.name}
    assert isinstance(s.reply, Completion)
    assert s.reply.text == WORDS
    assert (s.reply.usage.input_tokens, s.reply.usage.output_tokens) == (30, 12)
    report = await mesh.ask(agent.name, UsageQuery(), expect=UsageSummary)
    assert report.by_trace[s.trace_id].tokens == 42  # recorded from the final usage


@pytest.mark.ray
async def test_a_spent_budget_ends_the_stream_with_the_typed_error(
    mesh: Mesh, spawn: Spawn, server: LoopbackLLMServer
) -> None:
    model = "openai:sse-budget"
    long = " ".join(f"w{i}" for i in range(300))
    server.always("sse-budget", Step(text=long, usage=(30, 300), chunk_delay_s=0.001))
    agent = await spawn(LLMAgent, "spender", budget={"max_tokens": 150}, **_loopback(model, server))
    got: list[str] = []

    async def read() -> None:
        async with mesh.stream(agent.name, Prompt(text="go on")) as s:
            async for chunk in s:
                got.append(chunk.text)

    with pytest.raises(BudgetExceededError) as raised:
        await read()
    assert 50 < len(got) < 150  # tokens drawn as they came, stopped when spent
    assert raised.value.remaining == {"tokens": 150}
