"""The ``raymesh`` command: the app, built from the command modules and the plugins.

Each module adds one group of commands (``register(app)``): running a team (`_run`),
serving one over HTTP (`_serve`), the local head (`_cluster`), jobs (`_jobs`), inspecting
a running mesh (`_inspect`), approvals (`_approvals`). Other packages add theirs under
the ``raymesh.commands`` entry points.
"""

from __future__ import annotations

from importlib.metadata import entry_points, version

import typer
from rich.markup import escape

from mesh.cli import _approvals, _cluster, _inspect, _jobs, _run, _serve
from mesh.cli._console import err, fail

__all__ = ["app", "fail"]

app = typer.Typer(
    name="raymesh",
    help="Actor-model, peer-to-peer mesh runtime for multi-agent, multi-LLM systems on Ray.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Start, inspect and measure raymesh agent meshes."""


def show_version() -> None:
    """Print the versions of raymesh and Ray."""
    import ray

    typer.echo(f"raymesh {version('raymesh')} (ray {ray.__version__})")


def _add_plugin_commands() -> None:
    """Add the commands other packages declare under the ``raymesh.commands`` entry points.

    The benchmark and chaos suites plug in this way, so the runtime never imports them.
    """
    for entry in entry_points(group="raymesh.commands"):
        try:
            command = entry.load()
        except Exception as exc:  # a broken plugin must not take the other commands down
            err.print(f"[yellow]warning:[/yellow] command {entry.name!r} ({entry.value}) "
                      f"could not be loaded: {escape(str(exc))}")  # fmt: skip
            continue
        app.command(entry.name)(command)


# In this order in `raymesh --help`.
_approvals.register(app)
app.command("version")(show_version)
for _commands in (_run, _serve, _cluster, _jobs, _inspect):
    _commands.register(app)
_add_plugin_commands()
