"""``python -m mesh.cli``: the ``raymesh`` command without its console script."""

from mesh.cli import app

app()
