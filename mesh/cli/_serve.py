"""``raymesh serve``: a team started and served over HTTP until the command is stopped.

The command is the team's driver, as ``raymesh run`` is: it starts the team, deploys
the gateway through Ray Serve, and on Ctrl-C (or SIGTERM) deletes the gateway and
stops the team in order. The work is `mesh.gateway`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mesh.cli._console import err, fail, out
from mesh.cli._run import _mesh_for
from mesh.control import TeamSpec
from mesh.errors import ConfigError, MeshError

if TYPE_CHECKING:
    from mesh.gateway import TokenCheck

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``raymesh`` app."""
    app.command("serve")(serve)


def serve(  # noqa: PLR0917 (typer maps each parameter to an option)
    team_file: Annotated[Path, typer.Argument(help="The team YAML file.", show_default=False)],
    port: Annotated[
        int | None, typer.Option(help="HTTP port.", show_default="the serve block's, else 8000")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Deploy on this Ray cluster (HOST:PORT, e.g. a `raymesh up` head) instead "
            "of a local Ray.",
            show_default="a local Ray",
        ),
    ] = None,
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            help="The 0600 secrets file with RAYMESH_GATEWAY_TOKEN_<CLIENT>=... lines.",
            show_default="$RAYMESH_SECRETS_FILE",
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            help="Serve without tokens (on loopback only) and allow RAY_AUTH_MODE=disabled."
        ),
    ] = False,
    logs: Annotated[bool, typer.Option(help="Show the agents' log lines.")] = False,
) -> None:
    """Start a team and serve it over HTTP, OpenAI-compatible, until stopped.

    POST /v1/chat/completions (the model is an entry agent), GET /v1/models,
    POST /v1/tasks, GET /v1/traces/{id}. Every request needs a bearer token from the
    secrets file unless --dev. Ctrl-C deletes the gateway and stops the team in order.
    """
    from mesh.control import load_team

    try:
        spec = load_team(team_file)  # a bad file fails here, before Ray starts
        tokens = _tokens(secrets_file, spec, dev=dev)
        asyncio.run(_serve(spec, tokens, team_file.resolve().parent, port=port,
                           address=address, logs=logs, dev=dev))  # fmt: skip
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("[yellow]stopped: the gateway was removed and the team stopped[/yellow]")
        raise typer.Exit(130) from None
    except MeshError as exc:
        fail(exc)


def _tokens(secrets_file: Path | None, spec: TeamSpec, *, dev: bool) -> TokenCheck:
    """The tokens the gateway admits, from the secrets file; none only with --dev on loopback."""
    from mesh.gateway import TokenCheck, load_tokens
    from mesh.security import is_loopback

    path = secrets_file or os.environ.get("RAYMESH_SECRETS_FILE") or None
    if path is not None:
        return TokenCheck(load_tokens(path), dev=dev)
    host = spec.serve.host if spec.serve is not None else "127.0.0.1"
    if not dev:
        raise ConfigError(
            "raymesh serve has no tokens: every request needs a bearer token",
            hint="give --secrets-file (or RAYMESH_SECRETS_FILE) a 0600 file with "
            "RAYMESH_GATEWAY_TOKEN_<CLIENT>=<token> lines; or --dev on a trusted machine",
        )
    if not is_loopback(host):
        raise ConfigError(
            f"--dev serves without tokens, and serve.host {host} is not loopback",
            hint="serve beyond loopback only with tokens (--secrets-file)",
        )
    return TokenCheck({}, dev=True)


async def _serve(
    spec: TeamSpec,
    tokens: TokenCheck,
    team_dir: Path,
    *,
    port: int | None,
    address: str | None,
    logs: bool,
    dev: bool,
) -> None:
    from mesh.gateway import deploy_gateway, gateway_settings, remove_gateway

    with err.status("starting a local Ray" if address is None else f"joining {address}"):
        mesh = _mesh_for(team_dir, address, logs=logs, dev=dev)
    # SIGTERM stops it as Ctrl-C does: the main task is cancelled and cleans up. Set
    # after Ray started: its driver's own handler for SIGTERM aborts the process.
    main = asyncio.current_task()
    if main is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        with err.status(f"starting team {spec.name!r}"):
            team = await mesh.team(spec)
        settings = gateway_settings(spec, tokens=tokens, config=mesh.config, port=port)
        try:
            with err.status("deploying the gateway on Ray Serve"):
                url = await asyncio.to_thread(deploy_gateway, settings)
            out.print(f"serving team {spec.name!r} at {url}/v1 "
                      f"(models: {', '.join(settings.models)})", markup=False)  # fmt: skip
            if tokens.dev and not tokens.digests:
                err.print("[yellow]--dev: no tokens, anyone on this machine may call[/yellow]")
            out.print("Ctrl-C stops it", markup=False)
            await team.wait()  # until the team fails past its intensity, or Ctrl-C
        finally:
            await asyncio.to_thread(remove_gateway, spec.name)
    finally:
        await mesh.shutdown()
