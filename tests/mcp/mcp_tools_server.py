"""An MCP server for the tests, written with the official SDK's FastMCP.

``python mcp_tools_server.py`` serves over stdio; ``--http PORT`` over streamable HTTP on
127.0.0.1. Its tools cover what the client must handle: a plain answer, a key in the
output, a call that never ends, a process that dies, and the process id (to check that
the agent's stop ends the process).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("test-tools", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)


@server.tool()
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


@server.tool()
def leak() -> str:
    """Return a value that looks like an API key (from the environment, if set)."""
    key = os.environ.get("TEST_MCP_TOKEN", "sk-" + "A1b2C3d4" * 5)
    return f"the key is {key} ({len(key)} characters)"


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.sleep(3600)
    return "never"


@server.tool()
def die() -> str:
    """Exit the server process at once."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """Return the server's process id."""
    return os.getpid()


if __name__ == "__main__":
    server.run("streamable-http" if "--http" in sys.argv else "stdio")
