"""``python -m mesh.cli``: the ``raymesh`` command, as Ray jobs and tests start it."""

from mesh.cli import app

app()
