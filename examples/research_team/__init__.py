"""The research team of ``examples/research_team.yaml``: stages, sources, citation checks."""
