"""LLM-backed agents for raymesh (providers, routing, usage, roles) build on `mesh`."""
