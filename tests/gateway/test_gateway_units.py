"""The gateway's parts without Ray: SSE chunks, error JSON, tokens, the rate limit, chat mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors import Completion, LLMAgent, Prompt
from actors.messages import CallUsage
from mesh import Agent, handler
from mesh.control import ServeSpec, load_team
from mesh.errors import ConfigError, HandlerError, PeerNotFoundError
from mesh.gateway import (
    BadRequestError,
    ChatRequest,
    RateLimiter,
    TokenCheck,
    TooManyRequestsError,
    UnauthorizedError,
    chat_chunks,
    error_body,
    load_tokens,
    status_of,
)
from mesh.gateway._openai import entry_point
from protocols import DeadlineExceededError, Message, Result, Task


@dataclass(frozen=True)
class _Piece:
    text: str
    agent: str


async def _pieces(*pieces: _Piece, fail: Exception | None = None) -> AsyncIterator[_Piece]:
    for piece in pieces:
        yield piece
    if fail is not None:
        raise fail


async def _events(pieces: AsyncIterator[_Piece], reply: Message | None, **kw: bool) -> list[str]:
    stream = chat_chunks(
        pieces, model="assistant", agent="assistant", trace_id="t" * 32, reply=lambda: reply, **kw
    )
    return [event async for event in stream]


def _data(events: list[str]) -> list[dict[str, object] | str]:
    found: list[dict[str, object] | str] = []
    for event in events:
        assert event.startswith("data: "), event
        assert event.endswith("\n\n"), event
        body = event.removeprefix("data: ").removesuffix("\n\n")
        found.append(body if body == "[DONE]" else json.loads(body))
    return found


_REPLY = Completion(
    text="Hello there",
    model="offline:default",
    usage=CallUsage(calls=1, input_tokens=7, output_tokens=3),
)


async def test_chunks_are_openai_chat_completion_chunks_ending_in_done() -> None:
    pieces = _pieces(
        _Piece("Hel", "assistant"), _Piece("", "assistant"), _Piece("lo there", "assistant")
    )
    data = _data(await _events(pieces, _REPLY))
    assert data[-1] == "[DONE]"
    chunks = [d for d in data if isinstance(d, dict)]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {"chatcmpl-" + "t" * 32}
    deltas = [c["choices"][0]["delta"] for c in chunks]  # type: ignore[index]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Hello there"  # the empty piece: none
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"  # type: ignore[index]
    assert all("usage" not in c for c in chunks)  # not asked for


async def test_usage_comes_in_a_last_chunk_when_asked_for() -> None:
    data = _data(
        await _events(_pieces(_Piece("Hello there", "assistant")), _REPLY, include_usage=True)
    )
    usage_chunk = data[-2]
    assert isinstance(usage_chunk, dict)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    finish = data[-3]
    assert isinstance(finish, dict)
    assert finish["choices"][0]["finish_reason"] == "stop"


async def test_pieces_of_agents_below_are_labelled_not_content() -> None:
    pieces = _pieces(_Piece("worker says", "worker"), _Piece("Answer", "assistant"))
    chunks = [d for d in _data(await _events(pieces, _REPLY)) if isinstance(d, dict)]
    worker = chunks[1]
    assert worker["choices"][0]["delta"] == {}  # type: ignore[index]
    assert worker["raymesh"] == {"agent": "worker", "text": "worker says"}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)  # type: ignore[index]
    assert content == "Answer"


async def test_a_reply_that_was_not_streamed_is_sent_as_content() -> None:
    chunks = [d for d in _data(await _events(_pieces(), _REPLY)) if isinstance(d, dict)]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)  # type: ignore[index]
    assert content == "Hello there"


async def test_an_error_while_streaming_is_an_error_event_then_done() -> None:
    late = DeadlineExceededError("no reply within 0.5 s", agent="assistant", hint="raise it")
    data = _data(await _events(_pieces(_Piece("Hel", "assistant"), fail=late), _REPLY))
    assert data[-1] == "[DONE]"
    error = data[-2]
    assert isinstance(error, dict)
    assert error["error"]["type"] == "DeadlineExceededError"  # type: ignore[index]
    assert error["error"]["hint"] == "raise it"  # type: ignore[index]
    assert not any(
        isinstance(d, dict) and d.get("choices", [{}])[0].get("finish_reason") for d in data[:-2]
    )  # no finish: it did not finish


async def test_secrets_in_streamed_text_are_masked() -> None:
    key = "sk-" + "a1B2" * 10
    chunks = [
        d
        for d in _data(await _events(_pieces(_Piece(f"key {key}", "assistant")), _REPLY))
        if isinstance(d, dict)
    ]
    assert key not in json.dumps(chunks)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnauthorizedError("no"), 401),
        (BadRequestError("bad"), 400),
        (TooManyRequestsError("slow down", retry_after_s=0.4), 429),
        (PeerNotFoundError("gone"), 404),
        (DeadlineExceededError("late"), 504),
        (HandlerError("boom", remote_type="KeyError"), 502),
        (RuntimeError("secret internals"), 500),
    ],
)
def test_errors_have_a_status_and_openai_error_json(error: Exception, status: int) -> None:
    assert status_of(error) == status
    body = error_body(error)["error"]
    assert set(body) >= {"message", "type", "code", "param", "hint", "trace_id"}
    if isinstance(error, RuntimeError):
        assert body["type"] == "InternalError"
        assert "secret" not in body["message"]
    else:
        assert body["type"] == type(error).__name__


def test_an_error_message_never_carries_a_key() -> None:
    key = "sk-" + "Z9y8" * 10
    body = error_body(BadRequestError(f"cannot use {key}", hint=f"not {key}"))
    assert key not in json.dumps(body)


def _secrets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_tokens_from_a_secrets_file_name_their_clients(tmp_path: Path) -> None:
    alice, bob = "alice-" + "x" * 30, "bob-" + "y" * 30
    path = _secrets(
        tmp_path,
        f"RAYMESH_GATEWAY_TOKEN_ALICE={alice}\n"
        f"RAYMESH_GATEWAY_TOKEN={bob}\nOPENAI_API_KEY=sk-unrelated\n",
    )
    tokens = load_tokens(path)
    assert set(tokens) == {"alice", "default"}
    assert alice not in json.dumps(tokens)  # digests only
    check = TokenCheck(tokens)
    assert check.client(f"Bearer {alice}") == "alice"
    assert check.client(f"bearer {bob}") == "default"
    for header in (None, "", f"Basic {alice}", "Bearer ", f"Bearer {alice}x"):
        with pytest.raises(UnauthorizedError) as caught:
            check.client(header)
        assert alice not in str(caught.value)


def test_a_secrets_file_without_tokens_or_open_to_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no gateway token"):
        load_tokens(_secrets(tmp_path, "OPENAI_API_KEY=sk-unrelated\n"))
    with pytest.raises(ConfigError, match="shorter"):
        load_tokens(_secrets(tmp_path, "RAYMESH_GATEWAY_TOKEN_A=short\n"))
    path = _secrets(tmp_path, "RAYMESH_GATEWAY_TOKEN_A=" + "z" * 32 + "\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="group or others"):
        load_tokens(path)


def test_dev_without_tokens_lets_anyone_in() -> None:
    assert TokenCheck({}, dev=True).client(None) == "dev"
    with pytest.raises(UnauthorizedError):
        TokenCheck({}).client("Bearer anything-at-all-here")


def test_the_rate_limit_is_a_token_bucket_per_client() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    for _ in range(3):
        limiter.take("a", now=100.0)
    with pytest.raises(TooManyRequestsError) as caught:
        limiter.take("a", now=100.0)
    assert caught.value.retry_after_s == pytest.approx(0.5)
    limiter.take("b", now=100.0)  # another client has its own bucket
    limiter.take("a", now=100.5)  # half a second refills one
    with pytest.raises(TooManyRequestsError):
        limiter.take("a", now=100.5)


class _Tasker(Agent):
    @handler
    async def on_task(self, msg: Task, ctx: object) -> Result:
        return Result(text=msg.text)


class _Mute(Agent):
    pass


def test_a_chat_becomes_a_prompt_for_an_llm_agent_and_a_task_otherwise() -> None:
    chat = ChatRequest.model_validate(
        {
            "model": "a",
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
            ],
        }
    )
    prompt = entry_point("a", LLMAgent).message(chat)
    assert isinstance(prompt, Prompt)
    assert prompt.text == "Why?"
    assert prompt.max_tokens == 50
    assert prompt.context == ["system: Be brief.", "user: Hi", "assistant: Hello."]
    task = entry_point("t", _Tasker).message(chat)
    assert isinstance(task, Task)
    assert task.text.splitlines() == ["system: Be brief.", "user: Hi", "assistant: Hello.", "Why?"]
    with pytest.raises(ConfigError, match="neither"):
        entry_point("m", _Mute)
    no_user = ChatRequest.model_validate(
        {"model": "a", "messages": [{"role": "system", "content": "x"}]}
    )
    with pytest.raises(BadRequestError, match="no user message"):
        entry_point("a", LLMAgent).message(no_user)
    image = ChatRequest.model_validate(
        {
            "model": "a",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
        }
    )
    with pytest.raises(BadRequestError, match="image_url"):
        entry_point("a", LLMAgent).message(image)


def _team(**serve: object) -> dict[str, object]:
    return {"name": "t", "agents": [{"name": "a", "agent": "generalist"}], "serve": serve}


def test_the_serve_block_is_validated_with_the_team_file() -> None:
    spec = load_team(_team(replicas=2, port=9000, cors_origins=["https://ui.example"]))
    assert spec.serve is not None
    assert (spec.serve.replicas, spec.serve.port) == (2, 9000)
    assert spec.serve.cors_origins == ("https://ui.example",)
    assert load_team(_team()).serve == ServeSpec()  # an empty block: the defaults
    for bad, problem in [({"replicas": 0}, "replicas"), ({"colour": "red"}, "colour"),
                         ({"deadline_s": 60, "max_deadline_s": 10}, "max_deadline_s"),
                         ({"route_prefix": "v1"}, "route_prefix")]:  # fmt: skip
        with pytest.raises(ConfigError, match=problem):
            load_team(_team(**bad))
    nested = {"name": "t", "agents": [{"name": "a", "agent": "generalist"}],
              "teams": [{"name": "s", "agents": [{"name": "b", "agent": "generalist"}],
                         "serve": {}}]}  # fmt: skip
    with pytest.raises(ConfigError, match="only the top-level team"):
        load_team(nested)
