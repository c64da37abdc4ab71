"""LLM agents take tools from real MCP servers (FastMCP, as a subprocess over stdio and over
streamable HTTP on a loopback port), driven by the offline model's tool calls."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _ports import free_port

from actors import LLMAgent, McpServerError, ToolError
from actors.providers import ToolCall
from actors.tools import Toolbox
from mesh import ConfigError, DeadlineExceededError
from mesh.control import load_team

SERVER = str(Path(__file__).with_name("mcp_tools_server.py"))
STDIO: dict[str, Any] = {"name": "tools", "command": [sys.executable, SERVER]}


async def started(*servers: dict[str, Any], name: str = "helper") -> LLMAgent:
    agent = LLMAgent(mcp=list(servers))
    agent.name = name  # what the host sets on a spawned agent
    await agent.on_start()
    return agent


@pytest.fixture
async def agent() -> AsyncIterator[LLMAgent]:
    running = await started({**STDIO, "allow": ["echo", "pid", "hang", "die", "leak"]})
    yield running
    await running.on_stop()


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_the_model_calls_a_stdio_server_tool_through_the_tool_loop(agent: LLMAgent) -> None:
    specs = {t.name: t.spec() for t in agent.tools}
    assert specs["echo"].parameters["properties"]["text"]["type"] == "string"
    result = await agent.complete("use echo to say hello", timeout=30)
    assert [(run.name, run.ok) for run in result.tool_runs] == [("echo", True)]
    assert "echo: " in result.tool_runs[0].result
    assert "echo: " in result.text


async def test_a_tool_over_streamable_http(http_url: str) -> None:
    agent = await started({"name": "web", "url": http_url, "allow": ["echo"]})
    try:
        assert [t.name for t in agent.tools] == ["echo"]
        result = await agent.complete("use echo with words", timeout=30)
        assert result.tool_runs[0].ok
        assert result.tool_runs[0].result.startswith("echo: ")
    finally:
        await agent.on_stop()


async def test_a_tool_left_out_of_the_allow_list_is_never_offered_and_refused() -> None:
    agent = await started({**STDIO, "allow": ["echo"]})
    try:
        assert [t.name for t in agent.tools] == ["echo"]
        with pytest.raises(ToolError, match="unknown tool 'leak'"):
            await Toolbox(agent.tools).run(ToolCall(call_id="1", name="leak", arguments="{}"))
        with pytest.raises(ToolError, match="not allowed") as refused:
            await agent.mcp.connections[0].call("leak", {})
        assert refused.value.agent == "helper"
    finally:
        await agent.on_stop()


async def test_a_tool_to_approve_runs_only_when_the_approver_says_yes() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def approver(tool: str, arguments: dict[str, Any]) -> bool:
        asked.append((tool, arguments))
        return arguments["text"] != "no"

    agent = LLMAgent(approver=approver,
                     mcp=[{**STDIO, "allow": ["echo"], "approve": ["echo"]}])  # fmt: skip
    agent.name = "approving"
    await agent.on_start()
    try:
        toolbox = Toolbox(agent.tools)
        ok = await toolbox.run(ToolCall(call_id="1", name="echo", arguments='{"text": "yes"}'))
        assert ok == "echo: yes"
        with pytest.raises(ToolError, match="not approved"):
            await toolbox.run(ToolCall(call_id="2", name="echo", arguments='{"text": "no"}'))
        assert asked == [("echo", {"text": "yes"}), ("echo", {"text": "no"})]
    finally:
        await agent.on_stop()
    unapproved = await started({**STDIO, "allow": ["echo"], "approve": ["echo"]})
    try:
        with pytest.raises(ToolError, match="no approver"):
            await Toolbox(unapproved.tools).run(
                ToolCall(call_id="3", name="echo", arguments='{"text": "x"}')
            )
    finally:
        await unapproved.on_stop()


async def test_arguments_are_checked_against_the_servers_schema(agent: LLMAgent) -> None:
    with pytest.raises(ToolError, match="text"):
        await Toolbox(agent.tools).run(ToolCall(call_id="1", name="echo", arguments='{"x": 1}'))


async def test_a_key_in_a_tools_output_is_masked_before_the_model_sees_it(
    agent: LLMAgent,
) -> None:
    result = await agent.complete("call leak now", timeout=30)
    assert result.tool_runs[0].ok
    assert "sk-A1b2" not in result.tool_runs[0].result
    assert "sk-A1b2" not in result.text
    assert "the key is" in result.tool_runs[0].result


async def test_a_hanging_tool_is_cut_off_at_the_deadline_and_the_agent_keeps_working(
    agent: LLMAgent,
) -> None:
    began = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="hang"):
        await agent.complete("use hang", timeout=1.0)
    assert time.monotonic() - began < 5
    result = await agent.complete("use echo again", timeout=30)
    assert result.tool_runs[0].ok


async def test_a_server_that_dies_is_restarted_and_the_call_reported(agent: LLMAgent) -> None:
    first = await agent.complete("use pid", timeout=30)
    before = int(first.tool_runs[0].result)
    died = await agent.complete("use die", timeout=30)
    assert not died.tool_runs[0].ok
    assert "McpServerError" in died.tool_runs[0].result
    after = int((await agent.complete("use pid", timeout=30)).tool_runs[0].result)
    assert after != before
    assert agent.mcp.connections[0].restarts == 1
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == "zombie"


async def test_a_server_past_its_restarts_fails_every_call_typed() -> None:
    agent = await started({**STDIO, "allow": ["die", "echo"], "max_restarts": 0})
    try:
        connection = agent.mcp.connections[0]
        with pytest.raises(McpServerError, match="went away"):
            await connection.call("die", {})
        with pytest.raises(McpServerError, match="giving up") as gave_up:
            await connection.call("echo", {"text": "x"})
        assert gave_up.value.server == "tools"
        assert gave_up.value.agent == "helper"
        assert gave_up.value.hint
    finally:
        await agent.on_stop()


async def test_the_server_process_is_gone_after_the_agent_stops() -> None:
    agent = await started({**STDIO, "allow": ["pid"]})
    result = await agent.complete("use pid", timeout=30)
    pid = int(result.tool_runs[0].result)
    assert psutil.pid_exists(pid)
    await agent.on_stop()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        assert time.monotonic() < deadline, "the MCP server outlived its agent"
        await asyncio.sleep(0.05)


async def test_a_server_that_does_not_start_fails_the_start_typed() -> None:
    with pytest.raises(McpServerError, match="did not start") as failed:
        await started({"name": "broken", "command": [sys.executable, "-c", "pass"],
                       "start_timeout_s": 10})  # fmt: skip
    assert failed.value.server == "broken"


async def test_an_allow_list_naming_a_missing_tool_fails_the_start() -> None:
    with pytest.raises(ConfigError, match="no tool 'nope'"):
        await started({**STDIO, "allow": ["echo", "nope"]})


async def test_an_env_secret_reaches_the_server_and_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "tok" + "9f8e7d6c5b4a" * 3
    monkeypatch.setenv("SOURCE_OF_TOKEN", token)
    agent = await started({**STDIO, "allow": ["leak"],
                           "env": {"TEST_MCP_TOKEN": "${SOURCE_OF_TOKEN}"}})  # fmt: skip
    try:
        result = await agent.complete("call leak", timeout=30)
        assert result.tool_runs[0].ok
        seen = result.tool_runs[0].result
        assert f"({len(token)} characters)" in seen  # the server had it (not the default)
        assert token not in seen  # and the model did not see it
    finally:
        await agent.on_stop()
    with pytest.raises(ConfigError, match="MISSING_ONE"):
        await started({**STDIO, "env": {"X": "${MISSING_ONE}"}})


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ({"name": "a"}, "exactly one of 'command'"),
        ({"name": "a", "command": ["x"], "url": "http://h/mcp"}, "exactly one of"),
        ({"name": "a", "command": ["x"], "alow": ["t"]}, "alow"),
        ({"name": "a", "url": "ftp://h"}, "url"),
        ({"name": "a", "command": ["x"], "env": {"1BAD": "v"}}, "not a variable name"),
    ],
)
def test_the_team_file_mcp_block_is_checked_at_load(server: dict[str, Any], problem: str) -> None:
    team = {"name": "t", "agents": [{"name": "a", "agent": "generalist", "mcp": [server]}]}
    with pytest.raises(ConfigError, match=problem):
        load_team(team)


def test_an_agent_class_that_takes_no_mcp_servers_is_refused_at_load() -> None:
    team = {"name": "t", "agents": [{"name": "a", "agent": "a2a:http://127.0.0.1:9",
                                     "mcp": [STDIO]}]}  # fmt: skip
    with pytest.raises(ConfigError, match="A2AAgent takes no 'mcp' servers"):
        load_team(team)


def test_a_team_files_mcp_block_reaches_the_agents_constructor() -> None:
    team = load_team({"name": "t", "agents": [{"name": "a", "agent": "generalist",
                      "options": {"max_rounds": 2}, "mcp": [STDIO]}]})  # fmt: skip
    kwargs = next(team.walk_agents()).constructor_kwargs()
    assert kwargs["max_rounds"] == 2
    assert json.loads(json.dumps(kwargs["mcp"]))[0]["command"] == STDIO["command"]
    assert os.path.basename(kwargs["mcp"][0]["command"][1]) == "mcp_tools_server.py"
