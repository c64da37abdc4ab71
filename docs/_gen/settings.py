"""The settings table: one row per `MeshConfig` field, read from the model itself."""

from __future__ import annotations

import ast
import inspect
import itertools
import types
import typing
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

#: The constraint attributes of annotated-types, and how the table writes them.
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def config_class() -> type[Any]:
    """Return `MeshConfig` from the public package."""
    from mesh import MeshConfig

    return MeshConfig


def env_prefix() -> str:
    """The environment prefix the model reads (``RAYMESH_``)."""
    return str(config_class().model_config.get("env_prefix", ""))


def type_name(annotation: Any) -> str:
    """A short, readable name for a field's type: ``float``, ``'error' or 'wait'``..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:  # noqa: PLR0911 (one return per kind of value)
    """The default as a reader would write it in the environment (none: required)."""
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else "computed"
    value = field.default
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", "_") if value >= 10_000 else str(value)
    if isinstance(value, tuple | list) and not value:
        return "empty"
    return str(value)


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Docstrings written under fields (``x: int = 1`` then ``\"\"\"...\"\"\"``) of `cls`."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for stmt, after in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[stmt.target.id] = inspect.cleandoc(after.value.value)
    return found


def bounds(field: FieldInfo) -> str:
    """The field's numeric constraints (``>= 1``), if any."""
    shown = []
    for meta in field.metadata:
        for attr, sign in _BOUNDS.items():
            limit = getattr(meta, attr, None)
            if limit is not None:
                shown.append(f"{sign} {limit}")
    return ", ".join(shown)


def rows() -> list[tuple[str, str, str, str, str]]:
    """(field, env var, type, default, description) for every field, in declaration order."""
    cls = config_class()
    docs = attribute_docstrings(cls)
    prefix = env_prefix()
    found = []
    for name, field in cls.model_fields.items():
        description = field.description or docs.get(name, "")
        if limit := bounds(field):
            description = f"{description} ({limit})" if description else f"({limit})"
        found.append(
            (name, f"{prefix}{name}".upper(), type_name(field.annotation),
             default_text(field), description)
        )  # fmt: skip
    return found


#: Defaults that are words, not values, and so are not set in code type.
_WORDS = {"required", "computed", "not set", "empty"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_settings_table() -> str:
    """Return the Markdown table of every `MeshConfig` field."""
    lines = [
        "| setting | environment variable | type | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for name, env, kind, default, description in rows():
        shown = default if default in _WORDS else f"`{_cell(default)}`"
        lines.append(f"| `{name}` | `{env}` | {_cell(kind)} | {shown} | {_cell(description)} |")
    return "\n".join(lines) + "\n"
