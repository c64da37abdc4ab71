"""A two-node scenario run in its own process (a Ray cluster cannot share one with the
session's local Ray): prints one JSON line of findings for the test to check."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from ray.util.state import get_actor

TESTS = str(Path(__file__).parents[1])
sys.path.insert(0, TESTS)

from _agents import GetNotes, Notes, Ping, Pong, SendNotes  # noqa: E402

from mesh import Mesh, MeshConfig  # noqa: E402


async def _nodes(mesh: Mesh, names: list[str]) -> dict[str, str]:
    return {a.name: a.node_id for a in await mesh.agents() if a.name in names}


async def main() -> dict[str, object]:
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"head": 1}}
    )
    worker = cluster.add_node(num_cpus=2, resources={"worker": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="multinode",
             runtime_env={"env_vars": {"PYTHONPATH": TESTS}})  # fmt: skip
    mesh = Mesh.local(config=MeshConfig(namespace="multinode", lease_s=3))
    names = [f"m{i}" for i in range(6)]
    found: dict[str, object] = {}
    try:
        team = await mesh.team({
            "name": "spread",
            "max_restarts": 10,  # a lost node takes several agents at once
            "within_s": 10,
            "actor_options": {"resources": {"head": 0.01}},
            "agents": [{"name": n, "agent": "_agents:Echo",
                        "actor_options": {"scheduling_strategy": "SPREAD"}} for n in names],
        })  # fmt: skip
        before = await _nodes(mesh, names)
        registry = ray.get_actor("raymesh.registry", namespace="multinode")
        found["registry_on_head"] = get_actor(registry._actor_id.hex()).node_id != worker.node_id
        found["nodes_before"] = len(set(before.values()))
        worker_id = worker.node_id
        on_worker = [n for n, node in before.items() if node == worker_id]
        on_head = [n for n, node in before.items() if node != worker_id]
        found["on_worker"] = on_worker

        # Direct messages across nodes keep their order.
        sender, receiver = on_head[0], on_worker[0]
        await mesh.ask(sender, SendNotes(peer=receiver, count=1000), timeout=60)
        notes = await mesh.ask(receiver, GetNotes(), timeout=10, expect=Notes)
        found["cross_node_in_order"] = notes.seqs == list(range(1000))

        # Losing the worker node: its agents come back on the head.
        removed = time.monotonic()
        cluster.remove_node(worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = await _nodes(mesh, names)
            if len(now) == len(names) and worker_id not in now.values():
                break
            await asyncio.sleep(0.2)
        found["restarted_after_s"] = round(time.monotonic() - removed, 2)
        after = await _nodes(mesh, names)
        found["all_back"] = sorted(after) == sorted(names)
        found["none_on_removed_node"] = worker_id not in after.values()
        answers = [await mesh.ask(n, Ping(text="x"), timeout=10, expect=Pong) for n in names]
        found["all_answer"] = all(a.text == "x" for a in answers)
        rows = {r["name"]: r for r in await team.members()}
        found["restarts"] = {n: rows[n]["restarts"] for n in names}
    finally:
        await mesh.shutdown()
        ray.shutdown()
        cluster.shutdown()
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
