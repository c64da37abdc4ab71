"""``raymesh mcp``: start a team and serve its entry agents to MCP hosts until stopped."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Annotated

import typer

from mesh.cli._console import err, fail
from mesh.cli._run import _mesh_for
from mesh.control import TeamSpec
from mesh.errors import MeshError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``mcp`` to the ``raymesh`` app."""
    app.command("mcp")(mcp)


def mcp(
    team_file: Annotated[Path, typer.Argument(help="The team YAML file.", show_default=False)],
    http: Annotated[
        int | None,
        typer.Option(
            "--http",
            help="Serve streamable HTTP on 127.0.0.1:PORT (path /mcp) instead of stdio.",
            show_default="stdio",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (HOST:PORT) instead of starting a local Ray.",
            show_default="a local Ray",
        ),
    ] = None,
    dev: Annotated[
        bool, typer.Option(help="Allow RAY_AUTH_MODE=disabled for the local Ray (loopback only).")
    ] = False,
) -> None:
    """Start a team and expose its entry agents as MCP tools, until the host disconnects.

    Over stdio (what a desktop assistant or an IDE starts) stdout carries MCP JSON-RPC
    only; everything else, Ray's output included, goes to stderr. With --http PORT the
    server listens on 127.0.0.1 only. The team is stopped in order when it ends.
    """
    from mesh.control import load_team
    from mesh.mcp import protocol_stdout

    try:
        spec = load_team(team_file)  # a bad file fails here, before Ray starts
        here = team_file.resolve().parent
        if http is None:
            with protocol_stdout() as channel:
                asyncio.run(_serve(spec, here, address, dev, channel=channel))
        else:
            asyncio.run(_serve(spec, here, address, dev, port=http))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: the team was stopped[/yellow]")
        raise typer.Exit(130) from None
    except MeshError as exc:
        fail(exc)


async def _serve(
    spec: TeamSpec,
    team_dir: Path,
    address: str | None,
    dev: bool,
    *,
    channel: io.TextIOWrapper | None = None,
    port: int = 0,
) -> None:
    from mesh.mcp import serve_stdio, team_server

    mesh = _mesh_for(team_dir, address, logs=False, dev=dev)
    try:
        team = await mesh.team(spec)
        try:
            server = team_server(mesh, spec, port=port)
            if channel is not None:
                await serve_stdio(server, channel)
            else:
                err.print(f"team {spec.name!r} served over MCP at http://127.0.0.1:{port}/mcp")
                await server.run_streamable_http_async()
        finally:
            await team.stop()
    finally:
        await mesh.shutdown()
