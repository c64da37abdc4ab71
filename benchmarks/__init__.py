"""raymesh's benchmarks and chaos suite; run with ``raymesh bench`` / ``raymesh chaos``.

The runtime never imports this package: the CLI finds its commands by entry point.
"""

#: The benchmark suites, in the order a full run goes through them.
SUITES = (
    "two-agents", "watchdogs", "supervision", "llm", "topology", "patterns", "overload", "tls",
    "decode-bomb", "profile", "routing", "gateway", "ratelimit", "stream",
)  # fmt: skip
#: Messages per stream of the two-agents and watchdogs suites when --count is not given.
DEFAULT_COUNT = 5000
