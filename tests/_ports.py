"""Ports for the servers tests start, out of the way of Ray's own.

A port the kernel picks (a bind to port 0) comes from its ephemeral range, where every
Ray process takes its gRPC ports too: between a test picking one and its server binding
it, a Ray process started meanwhile (often by the very subprocess that is to serve on
it) can take it, and the test then speaks HTTP to a gRPC server. These come from below
the ephemeral range and above Ray's worker ports.
"""

from __future__ import annotations

import random
import socket

#: Above Ray's worker ports (10002-19999 by default), below Linux's ephemeral range (32768).
LOWEST, HIGHEST = 20_000, 32_767


def free_port() -> int:
    """Return a loopback port between `LOWEST` and `HIGHEST` that nothing holds now."""
    for _ in range(500):
        port = random.randint(LOWEST, HIGHEST)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST} and {HIGHEST}")
