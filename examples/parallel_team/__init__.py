"""The parallel team of ``examples/parallel_team.yaml``: a lead that splits, merges, and asks."""
