"""The stdio transport with a clean channel: nothing but MCP JSON-RPC on stdout.

A host reads the server's stdout as protocol; one stray line (a log, a banner from Ray or
from a process Ray starts) breaks the session. So before anything starts, file
descriptor 1 is pointed at stderr for this process and every child it will start, and
the real stdout is kept, under a descriptor of its own, for the protocol alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.stdio import stdio_server

from mesh._compat import mcp_lowlevel_server, mcp_problem
from mesh.errors import ConfigError

__all__ = ["protocol_stdout", "serve_stdio"]


@contextlib.contextmanager
def protocol_stdout() -> Iterator[io.TextIOWrapper]:
    """Send everything written to stdout to stderr; yield the real stdout, for MCP only."""
    sys.stdout.flush()
    channel = os.dup(1)
    saved = os.dup(1)
    os.dup2(2, 1)
    stream = io.TextIOWrapper(os.fdopen(channel, "wb"), encoding="utf-8", line_buffering=True)
    try:
        yield stream
    finally:
        stream.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


async def serve_stdio(server: FastMCP[Any], channel: io.TextIOWrapper) -> None:
    """Serve `server` over stdin and `channel` until the host closes stdin."""
    # FastMCP's own run_stdio_async writes to sys.stdout, which now goes to stderr: the
    # same few lines, with the protocol's stream passed in.
    problem = mcp_problem()
    if problem is not None:
        raise ConfigError(problem, hint="install the mcp version pyproject.toml pins (<2)")
    low_level = mcp_lowlevel_server(server)
    async with stdio_server(stdout=anyio.wrap_file(channel)) as (read, write):
        await low_level.run(read, write, low_level.create_initialization_options())
