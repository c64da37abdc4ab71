"""Options shared by the commands that join a running mesh (status, deadletters, approvals)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["Address", "AsJson", "Namespace"]

Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        "-a",
        help="The cluster's GCS address (HOST:PORT). Default: $RAY_ADDRESS, else the "
        "cluster `raymesh up` started.",
        show_default=False,
    ),
]
Namespace = Annotated[
    str | None, typer.Option(help="The mesh's Ray namespace.", show_default="raymesh")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
