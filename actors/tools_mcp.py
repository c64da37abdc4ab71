"""Tools from MCP servers: each server tool becomes a `Tool` of the agent's toolbox.

An LLM agent's ``mcp`` block names servers (a command over stdio, or a streamable HTTP
URL); the official ``mcp`` SDK's `ClientSession` speaks to them. Each allowed server
tool is offered to the model with the server's own JSON schema, and its calls go through
the same tool loop as a Python tool: arguments checked against that schema, the call
logged, its output redacted before the model sees it, and the whole bounded by the
ask's deadline (`LLMClient`'s tool loop cuts a hung call off). A tool the allow list
leaves out is never offered, and a call naming it is refused.

A session lives in a task of its own (the SDK's transports are context managers that
must be entered and left in one task) from the agent's start to its stop. A server that
dies is restarted at the next call, with backoff, at most ``max_restarts`` times; the
call that saw it die fails (it may have had effects: it is not repeated), and past the
limit every call fails with `McpServerError`.

The SDK is imported where a session opens, not with this module: it costs every agent's
worker a quarter of a second to import, and most agents have no MCP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import jsonschema

from actors.budget import current_budget
from actors.errors import BudgetExceededError, McpServerError, ToolError
from actors.providers import ToolSpec
from actors.tools import Tool
from mesh import ConfigError, get_logger
from mesh.control import SECRET_REFERENCE, McpServerSpec
from mesh.extension import get_secret
from mesh.security import remember_secret

if TYPE_CHECKING:
    from mcp import ClientSession, types

__all__ = ["McpConnection", "McpTool", "McpToolset"]

_log = get_logger(component="mcp")
#: Errors that mean the session is gone (the process exited, the stream broke).
_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream,
         httpx.TransportError)  # fmt: skip
_BACKOFF_S = 0.2


class McpConnection:
    """One MCP server's session, kept open in a task of its own and restarted when it dies."""

    def __init__(self, spec: McpServerSpec, *, agent: str | None = None) -> None:
        """Record the server; `start` opens the session."""
        self.spec = spec
        self.agent = agent
        self.restarts = 0
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> list[types.Tool]:
        """Open the session and return the server's tools the allow list lets through.

        Raises:
            McpServerError: The server did not start or answer in ``start_timeout_s``.
            ConfigError: ``allow`` names a tool the server does not have, or an ``env``
                secret is not set.
        """
        await self._open()
        listed = await self._list_tools()
        names = {t.name for t in listed}
        allow = self.spec.allow
        missing = sorted((set(allow or ()) | set(self.spec.approve)) - names)
        if missing:
            await self.aclose()
            raise ConfigError(
                f"MCP server {self.spec.name!r} has no tool {', '.join(map(repr, missing))}",
                agent=self.agent,
                hint=f"its tools: {', '.join(sorted(names)) or 'none'}; fix allow or approve",
            )
        return [t for t in listed if allow is None or t.name in allow]

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call `tool` on the server (restarting it first if it died).

        Raises:
            ToolError: The allow list does not let `tool` through, or the server refused it.
            McpServerError: The server died during the call, or cannot be restarted.
        """
        if self.spec.allow is not None and tool not in self.spec.allow:
            raise ToolError(
                f"tool {tool!r} of MCP server {self.spec.name!r} is not allowed",
                tool=tool,
                agent=self.agent,
                hint="add it to the server's allow list in the team file",
            )
        from mcp import McpError, types

        session = await self._live_session()
        try:
            return await session.call_tool(tool, arguments)
        except McpError as exc:
            if exc.error.code != types.CONNECTION_CLOSED:
                raise ToolError(
                    f"MCP server {self.spec.name!r} refused the call: {exc.error.message}",
                    tool=tool,
                    agent=self.agent,
                ) from None
            self._session = None
        except _GONE:
            self._session = None
        raise McpServerError(
            f"MCP server {self.spec.name!r} went away during the call of {tool!r}",
            server=self.spec.name,
            agent=self.agent,
            hint="the call was not repeated (it may have had effects); the server is "
            "restarted at the next call",
        )

    async def aclose(self) -> None:
        """Close the session and stop the server process (a command's)."""
        self._stop.set()
        runner, self._runner, self._session = self._runner, None, None
        if runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(10):
                    await runner
            if not runner.done():
                runner.cancel()

    async def _live_session(self) -> ClientSession:
        async with self._lock:
            if self._session is not None:
                return self._session
            while True:
                if self.restarts >= self.spec.max_restarts:
                    raise McpServerError(
                        f"MCP server {self.spec.name!r} died and was restarted "
                        f"{self.restarts} times: giving up",
                        server=self.spec.name,
                        agent=self.agent,
                        hint="see the server's stderr in the agent's log; raise max_restarts "
                        "or fix the server",
                    )
                await asyncio.sleep(_BACKOFF_S * 2**self.restarts)
                self.restarts += 1
                _log.warning("restarting MCP server", server=self.spec.name,
                             attempt=self.restarts, agent=self.agent)  # fmt: skip
                await self.aclose()
                try:
                    await self._open()
                except McpServerError:
                    continue
                assert self._session is not None  # set by _open
                return self._session

    async def _open(self) -> None:
        self._stop = asyncio.Event()
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(ready), name=f"mcp:{self.spec.name}")
        try:
            async with asyncio.timeout(self.spec.start_timeout_s):
                self._session = await asyncio.shield(ready)
        except (Exception, asyncio.CancelledError) as exc:
            await self.aclose()
            if isinstance(exc, asyncio.CancelledError | ConfigError):
                raise
            raise McpServerError(
                f"MCP server {self.spec.name!r} did not start: {_describe(exc)}",
                server=self.spec.name,
                agent=self.agent,
                hint="check its command or url (run it by hand), and start_timeout_s",
            ) from None

    async def _run(self, ready: asyncio.Future[ClientSession]) -> None:
        """Hold the session open until `aclose`; report a failure to open on `ready`."""
        from mcp import ClientSession

        try:
            async with self._transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                ready.set_result(session)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        from mcp import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        if self.spec.url is not None:
            async with streamable_http_client(self.spec.url) as (read, write, _):
                yield read, write
            return
        assert self.spec.command is not None  # McpServerSpec: one of command, url
        program, *args = self.spec.command
        params = StdioServerParameters(command=program, args=args, env=self._env())
        async with stdio_client(params) as (read, write):
            yield read, write

    def _env(self) -> dict[str, str] | None:
        if not self.spec.env:
            return None  # the SDK's default: only HOME, PATH and the like, never the keys
        env = {}
        for name, value in self.spec.env.items():
            reference = SECRET_REFERENCE.match(value)
            if reference is None:
                env[name] = value
                continue
            secret = get_secret(reference.group(1))
            if secret is None:
                raise ConfigError(
                    f"MCP server {self.spec.name!r}: env {name} reads the secret "
                    f"{reference.group(1)}, which is not set",
                    agent=self.agent,
                    hint="set it in the environment or in the RAYMESH_SECRETS_FILE file",
                )
            remember_secret(secret)  # masked in every log line and span from now on
            env[name] = secret
        return env

    async def _list_tools(self) -> list[types.Tool]:
        assert self._session is not None  # opened by _open
        tools: list[types.Tool] = []
        cursor: str | None = None
        async with asyncio.timeout(self.spec.start_timeout_s):
            while True:
                page = await self._session.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.nextCursor
                if cursor is None:
                    return tools


class McpTool(Tool):
    """A server tool as the model sees it: the server's name, description and JSON schema."""

    def __init__(self, connection: McpConnection, listed: types.Tool) -> None:
        """Offer `listed` (from the server's tools/list) through `connection`.

        Raises:
            ConfigError: The server's input schema is not a valid JSON schema.
        """
        self.connection = connection
        self.name = listed.name
        self.description = (
            listed.description or f"{listed.name} (MCP server {connection.spec.name})"
        )
        self.schema = dict(listed.inputSchema)
        try:
            validator = jsonschema.validators.validator_for(self.schema)
            validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"MCP tool {self.name!r} has an invalid input schema: "
                              f"{exc.message}", agent=connection.agent) from None  # fmt: skip
        self.validator = validator(self.schema)
        self.requires_approval = listed.name in connection.spec.approve
        self.approver = None
        self.is_async = True

    def spec(self) -> ToolSpec:
        """Return the tool with the server's own schema."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.schema)

    def validate(self, arguments: str) -> dict[str, Any]:
        """Parse the model's arguments and check them against the server's schema.

        Raises:
            ToolError: Not a JSON object, or it does not fit the schema.
        """
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(f"arguments for tool {self.name!r} are not JSON: {exc.msg}",
                            tool=self.name) from None  # fmt: skip
        problems = sorted(self.validator.iter_errors(parsed), key=lambda e: list(e.path))
        if not isinstance(parsed, dict) or problems:
            why = "; ".join(
                f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in problems
            )
            raise ToolError(
                f"arguments for tool {self.name!r} are not valid: {why or 'not an object'}",
                tool=self.name,
                hint="the model's tool call did not match the tool's schema",
            )
        return parsed

    async def call(self, arguments: dict[str, Any]) -> str:
        """Call the server tool; return its content as text.

        Raises:
            BudgetExceededError: The conversation's budget is spent.
            ToolError: The server refused the call or the tool reported an error.
            McpServerError: The server died or cannot be restarted.
        """
        budget = current_budget.get()
        if budget is not None and budget.fraction_left() <= 0:
            raise BudgetExceededError(
                f"the budget is spent: MCP tool {self.name!r} was not called",
                remaining=budget.remaining(),
                agent=self.connection.agent,
            )
        result = await self.connection.call(self.name, arguments)
        text = _content_text(result)
        if result.isError:
            raise ToolError(f"MCP tool {self.name!r} failed: {text}", tool=self.name)
        return text


class McpToolset:
    """The MCP servers of one agent: opened together at its start, closed at its stop."""

    def __init__(
        self, servers: Sequence[McpServerSpec | Mapping[str, Any]], *, agent: str | None = None
    ) -> None:
        """Validate the declarations (from a team file or Python).

        Raises:
            ConfigError: A declaration is not valid.
        """
        try:
            specs = [s if isinstance(s, McpServerSpec) else McpServerSpec(**s) for s in servers]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid mcp server: {exc}", agent=agent) from None
        self.connections = [McpConnection(spec, agent=agent) for spec in specs]

    async def open(self, *, agent: str | None = None) -> list[Tool]:
        """Start every server for `agent`; return their allowed tools.

        Raises:
            McpServerError: A server did not start (the others are closed again).
            ConfigError: An allow list or env secret is wrong.
        """
        tools: list[Tool] = []
        try:
            for connection in self.connections:
                connection.agent = agent or connection.agent
                listed = await connection.start()
                tools += [McpTool(connection, t) for t in listed]
                _log.info("MCP server started", server=connection.spec.name,
                          tools=[t.name for t in listed], agent=connection.agent)  # fmt: skip
        except BaseException:
            await self.aclose()
            raise
        return tools

    async def aclose(self) -> None:
        """Close every session and stop the servers' processes."""
        for connection in self.connections:
            await connection.aclose()


def _content_text(result: types.CallToolResult) -> str:
    from mcp import types

    parts = [
        block.text if isinstance(block, types.TextContent) else block.model_dump_json()
        for block in result.content
    ]
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent, default=str))
    return "\n".join(parts)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
