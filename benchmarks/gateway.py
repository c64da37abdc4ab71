"""The gateway's cost: chat completions over HTTP next to direct `Mesh.ask`, side by side.

One LLM agent on the offline model (no model latency, so the path is all there is to
measure) is asked the same prompt two ways, alternating at each level of concurrency:
directly (`Mesh.ask` with an ``llm.prompt/1``, as a Python driver would) and through
``raymesh serve``'s gateway (``POST /v1/chat/completions`` over loopback HTTP, bearer
token checked, via Ray Serve's proxy and a replica's own `Mesh`). At 1, 8 and 32
concurrent clients each path reports requests/s and p50/p99 latency, and the gateway's
figures as ratios of the direct ones. The HTTP client is aiohttp (Ray's own dependency),
so its overhead is small and the figure is the gateway's.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from rich.table import Table

from actors import Completion, Prompt
from benchmarks.percentiles import percentile
from mesh import Mesh
from mesh.control import load_team
from mesh.gateway import TokenCheck, deploy_gateway, gateway_settings, load_tokens

__all__ = ["CLIENTS", "Row", "as_json", "run", "table"]

#: Concurrent clients at each level.
CLIENTS = (1, 8, 32)
_AGENT = "bench-gateway-assistant"
_PROMPT = "Summarise the gateway benchmark in one line"


@dataclass(frozen=True)
class Row:
    """One path at one level of concurrency."""

    path: str  # "direct" or "gateway"
    clients: int
    requests: int
    errors: int
    per_s: float
    p50_ms: float | None
    p99_ms: float | None


async def _drive(
    clients: int, requests: int, call: Callable[[], Awaitable[None]]
) -> tuple[float, list[float], int]:
    """`requests` calls by `clients` concurrent workers: wall seconds, latencies, errors."""
    left = requests
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            started = time.perf_counter()
            try:
                await call()
            except Exception:  # counted, not raised: a benchmark reports its failures
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started, latencies, errors


def _row(path: str, clients: int, requests: int, measured: tuple[float, list[float], int]) -> Row:
    wall, latencies, errors = measured
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return Row(path=path, clients=clients, requests=requests, errors=errors,
               per_s=len(latencies) / wall if wall else 0.0,
               p50_ms=None if p50 is None else p50 * 1000,
               p99_ms=None if p99 is None else p99 * 1000)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run(mesh: Mesh, *, requests: int = 400, clients: tuple[int, ...] = CLIENTS) -> list[Row]:
    """Serve a one-agent team, then measure both paths at each level; stop it all after."""
    from ray import serve

    team = load_team({"name": "bench-gateway", "entry": _AGENT,
                      "agents": [{"name": _AGENT, "agent": "generalist",
                                  "model": "offline:default"}],
                      "serve": {"rate_per_s": 1e9, "burst": 1_000_000,
                                "max_ongoing_requests": 256}})  # fmt: skip
    handle = await mesh.team(team)
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as folder:
        secrets_path = Path(folder) / "gateway.env"
        secrets_path.write_text(f"RAYMESH_GATEWAY_TOKEN_BENCH={token}\n")
        secrets_path.chmod(0o600)
        check = TokenCheck(load_tokens(secrets_path))
    settings = gateway_settings(team, tokens=check, config=mesh.config, port=_free_port())
    try:
        url = await asyncio.to_thread(deploy_gateway, settings)
        headers = {"Authorization": f"Bearer {token}"}
        body = {"model": _AGENT, "messages": [{"role": "user", "content": _PROMPT}]}
        connector = aiohttp.TCPConnector(limit=max(clients))
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:

            async def through_gateway() -> None:
                async with http.post(f"{url}/v1/chat/completions", json=body) as response:
                    response.raise_for_status()
                    await response.read()

            async def direct() -> None:
                await mesh.ask(_AGENT, Prompt(text=_PROMPT), expect=Completion)

            await _drive(4, 16, through_gateway)  # warm: connections, the replica's links
            await _drive(4, 16, direct)
            rows = []
            for level in clients:
                rows.append(_row("direct", level, requests, await _drive(level, requests, direct)))
                gateway = await _drive(level, requests, through_gateway)
                rows.append(_row("gateway", level, requests, gateway))
        return rows
    finally:
        await asyncio.to_thread(serve.shutdown)
        await handle.stop()


def ratios(rows: list[Row]) -> dict[int, dict[str, float | None]]:
    """Per level: the gateway's requests/s, p50 and p99 over the direct path's."""
    found: dict[int, dict[str, float | None]] = {}
    for level in sorted({row.clients for row in rows}):
        by_path = {row.path: row for row in rows if row.clients == level}
        direct, gateway = by_path.get("direct"), by_path.get("gateway")
        if direct is None or gateway is None:
            continue
        found[level] = {
            "per_s": _ratio(gateway.per_s, direct.per_s),
            "p50": _ratio(gateway.p50_ms, direct.p50_ms),
            "p99": _ratio(gateway.p99_ms, direct.p99_ms),
        }
    return found


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def table(rows: list[Row]) -> Table:
    """The rows, each level's gateway beside its direct path, with the ratios."""
    shown = Table(title="gateway: chat completions over HTTP vs direct Mesh.ask (offline model)")
    for column in ("clients", "path", "requests/s", "p50 ms", "p99 ms", "errors", "vs direct"):
        shown.add_column(column, justify="left" if column == "path" else "right")
    relative = ratios(rows)
    for row in rows:
        versus = ""
        if row.path == "gateway" and row.clients in relative:
            r = relative[row.clients]
            versus = f"{_x(r['per_s'])} req/s, {_x(r['p50'])} p50, {_x(r['p99'])} p99"
        shown.add_row(str(row.clients), row.path, f"{row.per_s:,.0f}", _ms(row.p50_ms),
                      _ms(row.p99_ms), str(row.errors), versus)  # fmt: skip
    return shown


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def as_json(rows: list[Row]) -> dict[str, Any]:
    """The rows and the ratios, for ``--json``."""
    return {"rows": [asdict(row) for row in rows],
            "ratios": {str(k): v for k, v in ratios(rows).items()}}  # fmt: skip
