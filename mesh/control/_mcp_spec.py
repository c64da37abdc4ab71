"""The ``mcp:`` block of an agent in a team file: the MCP servers its tools come from.

Validated when the team file loads, like the rest of the spec, so a typo or a server
with neither a command nor a URL fails there, naming the field, not when the agent starts.
The agents package opens the sessions (actors.tools_mcp); the runtime only carries the
declaration to the agent's host, so it never imports the MCP SDK.

An ``env`` value written ``${NAME}`` is read from the environment or the secrets file when
the server starts (and masked in logs from then on); a value that looks like a key in
plain text is refused at load, as everywhere in a team file.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["SECRET_REFERENCE", "McpServerSpec"]

#: An ``env`` value naming a secret to read when the server starts: ``${NAME}``.
SECRET_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class McpServerSpec(BaseModel):
    """One MCP server an agent takes tools from: a command (stdio) or a URL (streamable HTTP).

    Attributes:
        name: The server's name in the agent's logs and errors (unique per agent).
        command: The program and its arguments, started over stdio.
        url: The server's streamable HTTP endpoint (``http://host:port/mcp``).
        env: Variables of the command's environment; ``${NAME}`` reads a secret.
        allow: The tool names the model is offered; None offers every tool listed.
        approve: Tool names whose every call waits for the agent's approver (refused
            without one), as a Python tool marked ``requires_approval``.
        start_timeout_s: Seconds to start the server and list its tools.
        max_restarts: Restarts of a server that died before it is reported as failed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    command: tuple[str, ...] | None = Field(None, min_length=1)
    url: str | None = Field(None, pattern=r"^https?://")
    env: dict[str, str] = Field(default_factory=dict)
    allow: tuple[str, ...] | None = None
    approve: tuple[str, ...] = ()
    start_timeout_s: float = Field(30.0, gt=0)
    max_restarts: int = Field(3, ge=0)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k)]
        if bad:
            raise ValueError(f"env: {', '.join(bad)} is not a variable name")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r} needs exactly one of 'command' (stdio) or 'url' "
                "(streamable HTTP)"
            )
        if self.url is not None and self.env:
            raise ValueError(f"MCP server {self.name!r}: 'env' applies to a command, not a url")
        return self
