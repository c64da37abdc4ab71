"""The customer-support team of ``examples/support_team.yaml``: agents, FAQ, orders, rules."""
