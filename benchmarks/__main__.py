"""``python -m benchmarks``: ``raymesh bench`` from a checkout, without raymesh's CLI."""

import typer

from benchmarks.cli import bench

typer.run(bench)
