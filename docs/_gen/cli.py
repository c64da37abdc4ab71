"""The CLI reference, from the click command behind the ``raymesh`` entry point.

The app is found through the console script that pyproject declares, so the reference
follows the app wherever its module moves. Typer ships its own copy of click, so the
command objects are used by their click interface, not checked against a click import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The console script whose app the reference documents.
SCRIPT = "raymesh"


def app() -> Any:
    """Load the object that the ``raymesh`` console script runs (the Typer app)."""
    found = entry_points(group="console_scripts", name=SCRIPT)
    if not found:
        raise LookupError(f"no console script {SCRIPT!r}: install the project (pip install -e .)")
    return next(iter(found)).load()


def command() -> Any:
    """Return the click command Typer builds from the app (a click group)."""
    import typer

    loaded = app()
    return typer.main.get_command(loaded) if isinstance(loaded, typer.Typer) else loaded


def _subcommands(cmd: Any, ctx: Any) -> list[tuple[str, Any]]:
    """A group's visible commands, in the app's order (none for a plain command)."""
    if not hasattr(cmd, "list_commands"):
        return []
    found = [(name, cmd.get_command(ctx, name)) for name in cmd.list_commands(ctx)]
    return [(name, sub) for name, sub in found if sub is not None and not sub.hidden]


def walk(cmd: Any, ctx: Any = None) -> Iterator[tuple[Any, Any]]:
    """Yield (command, context) for the command and every subcommand, depth first."""
    ctx = ctx or cmd.context_class(cmd, info_name=SCRIPT)
    yield cmd, ctx
    for name, sub in _subcommands(cmd, ctx):
        yield from walk(sub, sub.context_class(sub, info_name=name, parent=ctx))


def command_paths() -> list[str]:
    """The full name of every command, e.g. ``raymesh run`` (the group itself first)."""
    return [ctx.command_path for _, ctx in walk(command())]


def _plain(text: str) -> str:
    """Text without colour codes or click's no-rewrap markers (a line of ``\\b``)."""
    lines = _ANSI.sub("", text).splitlines()
    return "\n".join(line for line in lines if line.strip() != "\b").strip()


def _cell(text: str) -> str:
    return " ".join(_plain(text).replace("|", "\\|").split())


def _render(cmd: Any, ctx: Any) -> str:
    level = "#" * min(1 + ctx.command_path.count(" "), 4)
    title = f"{level} `{ctx.command_path}`" if ctx.parent else "# CLI reference"
    parts = [title, ""]
    if not ctx.parent:
        parts += [
            "Generated at build time from the `raymesh` console script's click command: "
            "each section is what `--help` prints.",
            "",
        ]
    if cmd.help:
        parts += [_plain(cmd.help), ""]
    parts += ["```text", " ".join(cmd.collect_usage_pieces(ctx)).join(
        [f"{ctx.command_path} ", ""]), "```", ""]  # fmt: skip
    records = [(p, p.get_help_record(ctx)) for p in cmd.get_params(ctx)]
    shown = [(p, r) for p, r in records if r is not None and not getattr(p, "hidden", False)]
    if shown:
        parts += ["| argument or option | what it does |", "|---|---|"]
        for _, (names, text) in shown:
            parts.append(f"| `{_cell(names)}` | {_cell(text)} |")
        parts.append("")
    if listed := _subcommands(cmd, ctx):
        parts += ["| command | what it does |", "|---|---|"]
        for name, sub in listed:
            anchor = f"{ctx.command_path} {name}".replace(" ", "-")
            parts.append(f"| [`{name}`](#{anchor}) | {_cell(sub.get_short_help_str(80))} |")
        parts.append("")
    return "\n".join(parts)


def render_cli_reference() -> str:
    """Return the whole reference: the group, then each command with its options."""
    return "\n".join(_render(cmd, ctx) for cmd, ctx in walk(command()))
