"""``raymesh mcp``: a running team served to MCP hosts (an edge imported by the CLI only).

See `team_server` (the tools), `serve_stdio` and `protocol_stdout` (the stdio transport
with nothing but protocol on stdout).
"""

from mesh.mcp._server import DEFAULT_DEADLINE_S, entry_agents, team_server
from mesh.mcp._stdio import protocol_stdout, serve_stdio

__all__ = ["DEFAULT_DEADLINE_S", "entry_agents", "protocol_stdout", "serve_stdio", "team_server"]
