"""Tools: typed Python callables a model may call, with their arguments validated first.

A tool's JSON schema comes from its type hints (through a pydantic model built from the
signature), so what the model is offered and what is checked are the same thing. Model
output never becomes a call without passing that check: an unknown tool name or bad
arguments are refused with `ToolError` and the refusal goes back to the model as the
tool's result, so it can correct itself within the loop's bounded rounds.

A tool that changes the world can be marked ``requires_approval``: each call then
waits for an approver (a person, a policy) to say yes, and without an approver it is
refused. What goes back to the model is redacted: a key in a tool's exception text
must not reach a model that may repeat it.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from actors.errors import ToolError
from actors.providers import ToolCall, ToolSpec
from mesh import ConfigError, MeshError, get_logger
from mesh.extension import redact
from protocols.errors import describe

__all__ = ["Approver", "Tool", "Toolbox", "tool"]

#: Decides on one call of a tool that requires approval: (tool name, validated
#: arguments) -> True to run it. A person behind a UI, or a policy.
Approver = Callable[[str, dict[str, Any]], Awaitable[bool]]

_log = get_logger(component="tools")


class Tool:
    """A Python callable offered to a model, with a schema taken from its type hints."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
    ) -> None:
        """Wrap `fn` (sync or async). Every parameter needs a type hint.

        Args:
            requires_approval: Each call must be approved first (see `Toolbox`).

        Raises:
            ConfigError: A parameter has no type hint or is ``*args`` / ``**kwargs``.
        """
        self.fn = fn
        self.name = name or fn.__name__
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else doc.split("\n\n")[0]
        self.is_async = inspect.iscoroutinefunction(fn)
        self.arguments_model = _arguments_model(fn, self.name)
        self.requires_approval = requires_approval
        self.approver: Approver | None = None

    def approved_by(self, approver: Approver | None) -> Tool:
        """Return this tool with `approver` deciding on its calls (if it requires approval)."""
        if not self.requires_approval or approver is None:
            return self
        bound = copy.copy(self)
        bound.approver = approver
        return bound

    def spec(self) -> ToolSpec:
        """Return the tool as offered to a model."""
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def validate(self, arguments: str) -> dict[str, Any]:
        """Parse and validate the model's arguments (JSON text).

        Raises:
            ToolError: The text is not a JSON object or does not fit the signature.
        """
        try:
            parsed = self.arguments_model.model_validate_json(arguments or "{}")
        except ValidationError as exc:
            raise ToolError(
                f"arguments for tool {self.name!r} are not valid: {_errors(exc)}",
                tool=self.name,
                hint="the model's tool call did not match the tool's schema",
            ) from None
        return {k: getattr(parsed, k) for k in type(parsed).model_fields}

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the tool with validated arguments; a sync tool runs in a worker thread."""
        if self.is_async:
            return await self.fn(**arguments)
        return await asyncio.to_thread(self.fn, **arguments)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    requires_approval: bool = False,
) -> Any:  # Tool, or a decorator returning one
    """Turn a function into a `Tool`: ``@tool``, or ``@tool(requires_approval=True)``."""
    if fn is None:
        return lambda f: Tool(f, name=name, requires_approval=requires_approval)
    return Tool(fn, name=name, requires_approval=requires_approval)


class Toolbox:
    """The tools offered in one conversation, by name."""

    def __init__(
        self, tools: Iterable[Tool | Callable[..., Any]] = (), *, approver: Approver | None = None
    ) -> None:
        """Collect tools; plain callables are wrapped.

        Args:
            tools: The tools.
            approver: Decides on calls of the tools that require approval; without
                one, those calls are refused.

        Raises:
            ConfigError: Two tools share a name.
        """
        self.tools: dict[str, Tool] = {}
        for item in tools:
            wrapped = (item if isinstance(item, Tool) else Tool(item)).approved_by(approver)
            if wrapped.name in self.tools:
                raise ConfigError(f"two tools are named {wrapped.name!r}")
            self.tools[wrapped.name] = wrapped

    def __bool__(self) -> bool:
        return bool(self.tools)

    def specs(self) -> list[ToolSpec]:
        """Return every tool as offered to a model."""
        return [t.spec() for t in self.tools.values()]

    async def run(self, call: ToolCall) -> str:
        """Validate and run one call; return its result as text for the model, keys redacted.

        Raises:
            ToolError: Unknown tool, invalid arguments, not approved, or the tool raised.
        """
        found = self.tools.get(call.name)
        if found is None:
            raise ToolError(
                f"the model asked for an unknown tool {call.name!r}",
                tool=call.name,
                hint=f"offered tools: {', '.join(self.tools) or 'none'}",
            )
        arguments = found.validate(call.arguments)
        if found.requires_approval:
            await _approve(found, arguments)
        try:
            result = await found.call(arguments)
        except Exception as exc:
            raise ToolError(
                redact(f"tool {call.name!r} raised {describe(exc)}"),
                tool=call.name,
                hint=redact(exc.hint) if isinstance(exc, MeshError) and exc.hint else None,
            ) from exc
        # A tool may read a key (from the environment, a vault) and return it: the model,
        # a third party, must never see one, nor pass it on in its answer.
        return redact(_as_text(result))


async def _approve(found: Tool, arguments: dict[str, Any]) -> None:
    if found.approver is None:
        _log.warning("tool call blocked: approval required, no approver", tool=found.name)
        raise ToolError(
            f"tool {found.name!r} requires approval and no approver is configured",
            tool=found.name,
            hint="give the agent an approver, or do not offer this tool",
        )
    if not await found.approver(found.name, arguments):
        _log.warning("tool call blocked: not approved", tool=found.name)
        raise ToolError(f"the call of tool {found.name!r} was not approved", tool=found.name)


def _arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError and friends from unresolvable annotations
        raise ConfigError(f"cannot resolve the type hints of tool {name!r}: {exc}") from None
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {name!r} cannot take *args or **kwargs")
        if param.name not in hints:
            raise ConfigError(
                f"tool {name!r}: parameter {param.name!r} needs a type hint",
                hint="the hints are the schema the model is offered and checked against",
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model: type[BaseModel] = create_model(
        f"{name}_arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)
