"""The ``raymesh`` command."""

from __future__ import annotations

from importlib.metadata import version

import typer

app = typer.Typer(
    name="raymesh",
    help="Actor-model, peer-to-peer mesh runtime for multi-agent, multi-LLM systems on Ray.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Start, inspect and measure raymesh agent meshes."""


@app.command("version")
def show_version() -> None:
    """Print the versions of raymesh and Ray."""
    import ray

    typer.echo(f"raymesh {version('raymesh')} (ray {ray.__version__})")


if __name__ == "__main__":
    app()
