"""``raymesh mcp``: the official MCP client (ClientSession over stdio_client) gives a team a
task, and the server's stdout carries nothing but MCP JSON-RPC."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from _ports import free_port
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from mesh.control import load_team
from mesh.mcp import entry_agents

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
TEAM = ROOT / "examples" / "mcp_team.yaml"


def test_the_entry_agents_are_the_teams_and_its_sub_teams_declared_ones() -> None:
    assert entry_agents(load_team(TEAM)) == ["assistant", "coder"]


async def test_an_mcp_host_lists_the_teams_tools_and_gives_it_a_task(tmp_path: Path) -> None:
    copy = tmp_path / "stdout.jsonl"
    command = f"{shlex.quote(sys.executable)} -m mesh.cli mcp {shlex.quote(str(TEAM))}"
    # tee keeps a copy of everything the server writes to stdout, for the check below.
    params = StdioServerParameters(command="sh", args=["-c", f"{command} | tee {copy}"],
                                   env=dict(os.environ), cwd=str(ROOT))  # fmt: skip
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=timedelta(seconds=120)) as session,
        ):
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"ask_assistant", "ask_coder"}
            assert tools["ask_assistant"].inputSchema["required"] == ["task"]
            done = await session.call_tool("ask_assistant", {"task": "Say hello to MCP",
                                                             "deadline_s": 60})  # fmt: skip
            assert not done.isError, done.content
            assert isinstance(done.content[0], TextContent)
            assert "hello" in done.content[0].text.lower()
            assert done.structuredContent is not None
            assert len(done.structuredContent["trace_id"]) == 32
            assert done.structuredContent["agent"] == "assistant"
            failed = await session.call_tool("ask_coder", {"task": "x", "deadline_s": 0.000001})
            assert failed.isError
            assert failed.structuredContent is not None
            assert failed.structuredContent["error"] == "DeadlineExceededError"
    lines = copy.read_text().splitlines()
    assert len(lines) >= 4
    for line in lines:
        assert json.loads(line)["jsonrpc"] == "2.0", line
    assert "ray" in (tmp_path / "stderr.log").read_text().lower()


async def test_the_team_over_streamable_http_on_loopback(tmp_path: Path) -> None:
    port = free_port()  # not one Ray, which the server starts first, may take
    with (tmp_path / "log").open("w") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mesh.cli", "mcp", str(TEAM), "--http", str(port),
            stdout=log, stderr=log, cwd=ROOT,
        )  # fmt: skip
        # The driver's own ports (Ray's) count too: every one is on loopback.
        try:
            deadline = time.monotonic() + 120
            while not _listens(port):
                assert process.returncode is None, (tmp_path / "log").read_text()
                assert time.monotonic() < deadline, "raymesh mcp --http did not listen"
                await asyncio.sleep(0.2)
            listening = {c.laddr.ip for c in psutil.Process(process.pid).net_connections()
                         if c.status == psutil.CONN_LISTEN}  # fmt: skip
            assert listening <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening
            url = f"http://127.0.0.1:{port}/mcp"
            async with (
                streamable_http_client(url) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                done = await session.call_tool("ask_coder", {"task": "add two numbers"})
                assert not done.isError, done.content
                assert done.structuredContent is not None
                assert done.structuredContent["agent"] == "coder"
        finally:
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(60):
                assert await process.wait() in (0, 130)


def _listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
