"""A team file's mcp block on a real local Ray: the agent's host starts the server, the
model's tool call reaches it, and stopping the team ends the server's process."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import psutil
import pytest

from actors import Completion, Prompt
from mesh import Mesh

pytestmark = pytest.mark.ray

SERVER = str(Path(__file__).with_name("mcp_tools_server.py"))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_team_agent_uses_an_mcp_server_and_stopping_the_team_stops_it(
    mesh: Mesh,
) -> None:
    server = {"name": "tools", "command": [sys.executable, SERVER], "allow": ["pid", "echo"]}
    team = await mesh.team({"name": "mcp-ray", "agents": [
        {"name": "mcp-user", "agent": "generalist", "mcp": [server]}]})  # fmt: skip
    try:
        reply = await mesh.ask("mcp-user", Prompt(text="use pid"), timeout=30, expect=Completion)
        assert reply.tools_called == ["pid"]
        pid = int(re.findall(r"\d+", reply.text)[-1])
        assert not _gone(pid)
    finally:
        await team.stop()
    deadline = time.monotonic() + 15
    while not _gone(pid):
        assert time.monotonic() < deadline, "the MCP server outlived its agent"
        await asyncio.sleep(0.1)
