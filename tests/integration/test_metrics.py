"""Per-agent metrics reach Ray's Prometheus endpoint, tagged with the agent."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import pytest
import ray
from _agents import Boom, Echo, Ping, Relay, Relayer, Seen
from conftest import Spawn

from actors import Prompt, Reasoner
from mesh import HandlerError, Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _scrape() -> list[tuple[str, dict[str, str], float]]:
    # The session's Ray serves every worker's metrics at its node's export port.
    port = ray._private.worker._global_node.metrics_export_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and found.group(1).startswith("ray_raymesh_"):
            samples.append((found.group(1), dict(_LABEL.findall(found.group(2))),
                            float(found.group(3))))  # fmt: skip
    return samples


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, **tags: str) -> float:
    return sum(value for metric, labels, value in samples
               if metric == name and all(labels.get(k) == v for k, v in tags.items()))  # fmt: skip


async def test_agents_metrics_appear_in_rays_prometheus_endpoint(mesh: Mesh, spawn: Spawn) -> None:
    a, b = [await spawn(Relayer, n) for n in ("ma", "mb")]
    echo = await spawn(Echo, "mecho")
    llm = await spawn(Reasoner, "mllm", model="offline:metered",
                      prices={"offline:": {"input": 1.0, "output": 1.0}})  # fmt: skip
    team = await mesh.team({"name": "metered", "agents": [
        {"name": "metered-member", "agent": "_agents:Member"}]})  # fmt: skip
    try:
        for _ in range(3):
            await mesh.ask(a.name, Relay(route=[b.name]), expect=Seen)
        await mesh.ask(echo.name, Ping(text="hi"))
        with pytest.raises(HandlerError):
            await mesh.ask(echo.name, Boom(text="bad"))
        await mesh.ask(llm.name, Prompt(text="count me"))
        with pytest.raises(HandlerError):  # it crashes, and its supervisor restarts it
            await mesh.ask("metered-member", Boom(text="crash"))
        await _check_series(a.name, b.name, echo.name, llm.name)
    finally:
        await team.stop()


async def _check_series(a: str, b: str, echo: str, llm: str) -> None:
    expected = {
        ("ray_raymesh_messages_in_total", a, "type", "test.relay/1"): 3,
        ("ray_raymesh_messages_in_total", b, "type", "test.relay/1"): 3,
        ("ray_raymesh_messages_out_total", a, "type", "test.relay/1"): 3,
        ("ray_raymesh_handler_seconds_count", b, "type", "test.relay/1"): 3,
        ("ray_raymesh_errors_total", echo, "error", "HandlerError"): 1,
        ("ray_raymesh_model_tokens_total", llm, "model", "offline:metered"): None,
        ("ray_raymesh_model_cost_usd_total", llm, "model", "offline:metered"): None,
        ("ray_raymesh_restarts_total", "metered-member", "team", "metered"): 1,
    }
    deadline = time.monotonic() + 90  # Ray exports every few seconds
    while True:
        samples = await asyncio.to_thread(_scrape)
        found = {key: _total(samples, key[0], agent=key[1], **{key[2]: key[3]}) for key in expected}
        if all(found.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    for key, count in expected.items():
        assert found[key] > 0, (key, found)
        if count is not None:
            assert found[key] == count, (key, found)
    gauges = [labels for metric, labels, _ in samples if metric == "ray_raymesh_mailbox_depth"]
    assert {a, b, echo} <= {labels["agent"] for labels in gauges}
    assert _total(samples, "ray_raymesh_messages_in_total", agent=echo) == 2
