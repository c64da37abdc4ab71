"""A running team as an MCP server: one tool per entry agent, over stdio or streamable HTTP.

Any MCP host (a desktop assistant, an IDE) can then give the team a task. A tool takes
the task's text and, optionally, its deadline in seconds; it asks the entry agent a
`Task` under a fresh trace id and returns the `Result`'s text, with the trace id, the
agent and the result's data as structured content. A mesh error comes back as an MCP
tool error naming its type and hint, so the host (and its model) can tell a deadline
from a refusal. The answer is masked (`redact_data`) as ``raymesh run`` masks it.

Built on the official ``mcp`` SDK's FastMCP. Only the CLI imports this package: it is an
edge above the runtime, which never depends on it (an import-linter contract).
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.types import CallToolResult, TextContent

from mesh.control import TeamSpec
from mesh.edge import Mesh
from mesh.errors import MeshError
from mesh.security import redact, redact_data
from protocols import Result, Task, new_trace_id

__all__ = ["DEFAULT_DEADLINE_S", "entry_agents", "team_server"]

#: Seconds a task may take when the host gives no deadline.
DEFAULT_DEADLINE_S = 300.0


def entry_agents(spec: TeamSpec) -> list[str]:
    """The agents a host may give tasks: the team's entry and each sub-team's declared one."""
    entries = [spec.entry_agent(), *(t.entry for t in spec.walk_teams() if t.entry)]
    return list(dict.fromkeys(entries))


def team_server(
    mesh: Mesh, spec: TeamSpec, *, host: str = "127.0.0.1", port: int = 0
) -> FastMCP[Any]:
    """Return an MCP server whose tools give tasks to the running team's entry agents.

    The team must already run on `mesh` (``mesh.team(spec)``); `host` and `port` are used
    by the streamable HTTP transport only.
    """
    server: FastMCP[Any] = FastMCP(
        f"raymesh-{spec.name}",
        instructions=f"The raymesh team {spec.name!r}: give its agents a task.",
        host=host,
        port=port,
        log_level="WARNING",
    )
    for agent in entry_agents(spec):
        server.add_tool(
            _task_tool(mesh, agent),
            name=_tool_name(agent),
            description=f"Give agent {agent!r} of team {spec.name!r} a task; returns its "
            "answer. deadline_s bounds the whole task (default "
            f"{DEFAULT_DEADLINE_S:.0f} s).",
        )
    return server


def _task_tool(mesh: Mesh, agent: str) -> Any:
    async def give_task(task: str, deadline_s: float | None = None) -> CallToolResult:
        trace_id = new_trace_id()
        try:
            timeout = deadline_s or DEFAULT_DEADLINE_S
            result = await mesh.ask(
                agent, Task(text=task), timeout=timeout, trace_id=trace_id, expect=Result
            )
        except MeshError as exc:
            code = type(exc).__name__
            hint = f" (hint: {exc.hint})" if exc.hint else ""
            return CallToolResult(
                isError=True,
                content=[TextContent(type="text", text=redact(f"{code}: {exc.message}{hint}"))],
                structuredContent={
                    "error": code,
                    "hint": redact(exc.hint or ""),
                    "trace_id": trace_id,
                    "agent": agent,
                },
            )
        masked = Result.model_validate(redact_data(result.model_dump()))
        return CallToolResult(
            content=[TextContent(type="text", text=masked.text)],
            structuredContent={
                "text": masked.text,
                "trace_id": trace_id,
                "agent": agent,
                "data": masked.data,
            },
        )

    return give_task


def _tool_name(agent: str) -> str:
    """An MCP tool name for `agent` (letters, digits, ``_`` and ``-``)."""
    return "ask_" + re.sub(r"[^A-Za-z0-9_-]", "_", agent)
